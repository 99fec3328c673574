"""`systemctl reload syncadmin-web` (HUP) after an upgrade must serve the new code.

The upgrade page's last step reloads the web node instead of restarting it, so that no request
is dropped. gunicorn's HUP starts new workers and retires the old ones; with ``preload_app`` the
master keeps the application it imported at start and the new workers are forked from it, so
they run the OLD code. This test runs deploy/gunicorn.conf.py on a two-line WSGI application,
changes the application's file as an upgrade would, sends HUP and waits for the new answer.
"""

import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from tests.processes import ROOT, free_port, stop, wait_until

APP = """def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{version}"]
"""


def answer(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


@pytest.fixture
def node(tmp_path):
    (tmp_path / "upgraded_app.py").write_text(APP.format(version="release-1"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_RUNTIME_DIR": str(tmp_path / "run"),
        "LOG_FORMAT": "plain",
    }
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "upgraded_app:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc, port, tmp_path
    finally:
        stop(proc)
        log.close()


def test_a_hup_reload_serves_the_upgraded_code(node):
    proc, port, app_dir = node
    assert wait_until(lambda: answer(port) == "release-1", timeout=30), (app_dir / "gunicorn.log").read_text()

    (app_dir / "upgraded_app.py").write_text(APP.format(version="release-2"))
    os.kill(proc.pid, signal.SIGHUP)  # ExecReload=/bin/kill -s HUP $MAINPID

    # Every worker is replaced: several answers in a row come from the new code, none from the old.
    def upgraded() -> bool:
        return all(answer(port) == "release-2" for _ in range(6))

    assert wait_until(upgraded, timeout=30), (app_dir / "gunicorn.log").read_text()
    assert proc.poll() is None  # the master stayed up: a reload, not a restart
