"""``manage.py serve``, as ``make run`` starts it: lines a newcomer reads in a terminal, not a JSON wall.

Production writes JSON (deploy/gunicorn.conf.py, LOG_FORMAT=json: tests/deploy/test_production_stack.py
parses it); serve runs gunicorn and the worker cluster with plain application lines and
gunicorn's own access line format. Its own SQLite file and the ORM broker, so it runs in both
passes of `make test`.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.processes import ROOT, free_port, stop, wait_until


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (serve starts each child in its own session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_serve_writes_plain_lines_and_keeps_its_control_socket_in_its_var_dir(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_", "LOG_", "GUNICORN_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hub.sqlite3'}",
        "Q_BROKER": "orm",
        "SYNC_VAR_DIR": str(tmp_path),
        "LOG_LEVEL": "INFO",
    }
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    port = free_port()
    out = tmp_path / "serve.log"
    with open(out, "w") as log:
        serve = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--web-workers", "1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = []
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: up(base + "/accounts/login/"), 90), out.read_text()[-3000:]
        started = children(serve.pid)
        assert requests.get(base + "/accounts/login/?from=serve-test", timeout=10).status_code == 200
        assert wait_until(lambda: "from=serve-test" in out.read_text(), 10), out.read_text()[-3000:]
        assert (tmp_path / "run" / "serve-gunicorn.ctl").is_socket()
    finally:
        stop(serve, timeout=90)  # serve stops gunicorn and the cluster through their main processes
        for pid in started:  # whatever a failed stop left behind (each child leads its own group)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    lines = [line for line in out.read_text().splitlines() if line.strip()]
    as_json = []
    for line in lines:
        try:
            as_json.append(isinstance(json.loads(line), dict))
        except ValueError:
            as_json.append(False)
    assert not any(as_json), [line for line, j in zip(lines, as_json, strict=True) if j][:5]
    # gunicorn's access line, and the application's lines in the plain format: time level logger message
    assert any('"GET /accounts/login/?from=serve-test HTTP/1.1" 200' in line for line in lines), lines[-20:]
    assert any(" INFO axes.apps AXES: BEGIN" in line for line in lines), lines[:20]
