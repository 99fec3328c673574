"""For tests that run the hub's own processes (qcluster, gunicorn) against the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def postgres_url(database: str | None = None) -> str:
    """The URL of the PostgreSQL server pytest-django runs on: of its test database (the rows a test
    made are in it), of ``database`` on that server, or of the server itself with ``database=""``."""
    from django.db import connection

    db = connection.settings_dict
    name = db["NAME"] if database is None else database
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}" + (f"/{name}" if name else "")


def wait_until(predicate, timeout: float, step: float = 0.3) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict, log, port: int) -> subprocess.Popen:
    """A web node as production runs it (deploy/gunicorn.conf.py) on 127.0.0.1:``port``, in its own group."""
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "syncadmin.wsgi:application"],
        cwd=ROOT,
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_qcluster(env: dict, log) -> subprocess.Popen:
    """``manage.py sync_cluster`` (qcluster + its due check) in its own process group (so a test can kill
    the whole cluster)."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "sync_cluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the main process only (as systemd's KillMode=mixed does), then kill the group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    kill_group(proc)  # whatever is left of it: as KillMode=mixed also does once the main process exits


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL every process left in ``proc``'s group, even once ``proc`` itself is gone: a
    cluster whose main process died leaves its workers in the group, orphaned otherwise."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid`` (a cluster started here)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    """``manage.py check --deploy --fail-level WARNING`` under ``env``, output captured."""
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
