"""The chaos harness: a private, disposable copy of the whole stack on loopback.

Every scenario runs against infrastructure the suite creates and controls itself, never the
machine's shared PostgreSQL or Redis (other jobs use those; scenario 4 stops the database):

- ``PrivatePostgres``: ``initdb`` into a temp dir (run as the ``postgres`` OS user when we are
  root: the server refuses to run as root), started with ``pg_ctl`` on a free port. It can be
  stopped (``fast`` or ``immediate``, i.e. a crash) and started again.
- ``PrivateRedis``: a ``redis-server`` child on a free port, no persistence.
- ``Stack``: one scenario's database (cloned from a migrated template in a second), gunicorn
  serving the SOAP API, any number of ``qcluster`` processes, and helpers to read the database
  with plain psycopg (the test process's own Django connection points at the test database).

Processes are started in their own session so a whole cluster can be SIGKILLed as a group.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(interval)
    try:
        return bool(predicate())
    except Exception:
        return False


def pg_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return candidates[-1]
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found


def rss_kb(pid: int) -> int:
    """Resident memory of one process, in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc: no psutil needed)."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(stat.split("/")[2]))
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


# --- PostgreSQL ----------------------------------------------------------------------------------------


class PrivatePostgres:
    """A throw-away PostgreSQL cluster of our own, on a free loopback port."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        # Not under pytest's tmp_path: that is mode 0700 for root and the postgres user must enter.
        self.root = Path(tempfile.mkdtemp(prefix="syncadmin-chaos-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_postgres = os.geteuid() == 0

    def _run(self, *cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        if self.as_postgres:
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            # fsync off: the scenarios crash *processes*, not the machine, and the OS page
            # cache survives a process crash; an immediate stop still goes through WAL recovery.
            f.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "max_connections = 300\nfsync = off\nfull_page_writes = off\nshared_buffers = 64MB\n"
                "log_min_messages = warning\n"
            )

    def start(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def outage(self, seconds: float, mode: str) -> tuple[float, float]:
        """Stop the server (``fast``, or ``immediate``: a crash), keep it down ``seconds``, start it
        again; returns (down_at, up_at) on the monotonic clock."""
        self.stop(mode)
        down_at = time.monotonic()
        assert not self.is_up()
        time.sleep(seconds)
        self.start()
        return down_at, time.monotonic()

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_until(self._ping, 20):
            raise RuntimeError("private redis-server did not start")

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- one scenario's stack --------------------------------------------------------------------------------

TEMPLATE_DB = "chaos_template"

# Fast timings so a CI run sees many leases expire and retries come due within seconds.
BASE_SETTINGS = {
    "SYNC_WORKERS": "2",
    "SYNC_LEASE_SECONDS": "3",
    "SYNC_CLAIM_BATCH": "50",
    "SYNC_MAX_ATTEMPTS": "5",
    "SYNC_BACKOFF_BASE_SECONDS": "0.5",
    "SYNC_BACKOFF_MAX_SECONDS": "5",
    "SYNC_DRAIN_SECONDS": "5",
    "Q_TIMEOUT": "20",
    "Q_RETRY": "30",
    "DATABASE_CONN_MAX_AGE": "60",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill_group(self, sig=signal.SIGKILL) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def memory_kb(self) -> int:
        return rss_kb(self.pid) + sum(rss_kb(p) for p in descendants(self.pid))


@dataclass
class Stack:
    pg: PrivatePostgres
    redis: PrivateRedis
    workdir: Path
    dbname: str = field(default_factory=lambda: f"chaos_{uuid.uuid4().hex[:8]}")
    settings: dict = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "var").mkdir(exist_ok=True)
        self.pg.execute(f"CREATE DATABASE {self.dbname} TEMPLATE {TEMPLATE_DB}")

    # environment -------------------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.pg.url(self.dbname)

    def env(self, **extra: str) -> dict:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_SETTINGS"))}
        return {
            **base,
            **BASE_SETTINGS,
            "DATABASE_URL": self.database_url,
            "Q_BROKER": self.redis.url,
            "Q_CLUSTER_NAME": self.dbname,  # a queue of its own on the private Redis
            "SYNC_VAR_DIR": str(self.workdir / "var"),
            "DJANGO_SECRET_KEY": "chaos-" + "k" * 60,
            "DJANGO_SETTINGS_MODULE": "syncadmin.settings",
            "PYTHONPATH": str(ROOT),
            **self.settings,
            **extra,
        }

    def manage(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def python(self, code: str, env: dict | None = None, timeout: float = 120) -> str:
        """Run Python with Django set up against this stack; returns its stdout."""
        script = "import django; django.setup()\n" + code
        done = subprocess.run(
            [PYTHON, "-c", script],
            cwd=ROOT,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"helper failed ({done.returncode}): {done.stderr[-3000:]}")
        return done.stdout

    # processes -------------------------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str], env: dict, port: int | None = None) -> Proc:
        log_path = self.workdir / f"{name}-{len(self.procs)}.log"
        popen = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc = Proc(name, popen, log_path, port)
        self.procs.append(proc)
        return proc

    def start_web(
        self, workers: int = 2, app: str = "syncadmin.wsgi:application", args: tuple = (), **extra_env: str
    ) -> Proc:
        port = free_port()
        cmd = [
            PYTHON,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            # gunicorn 27 otherwise shares one control socket in $HOME between every instance
            "--no-control-socket",
            *args,
        ]
        proc = self._spawn("web", cmd, self.env(**extra_env), port)
        url = f"http://127.0.0.1:{port}/soap/terminal/v1/?wsdl"
        if not wait_until(lambda: _http_ok(url), 60, 0.3):
            raise RuntimeError("gunicorn did not come up:\n" + proc.log_tail())
        return proc

    def soap_url(self, web: Proc) -> str:
        return f"http://127.0.0.1:{web.port}/soap/terminal/v1/"

    def start_cluster(self, prefix: list[str] | None = None, **extra_env: str) -> Proc:
        cmd = [*(prefix or []), PYTHON, "manage.py", "sync_cluster"]
        return self._spawn("cluster", cmd, self.env(**extra_env))

    def worker_pids(self, cluster: Proc) -> list[int]:
        return descendants(cluster.pid)

    def stop_all(self) -> None:
        # Every group, not only those whose leader is alive: a cluster whose main process died
        # (a scenario killed its sentinel, say) leaves its workers behind in the group, and they
        # outlived the test run (found as orphaned qclusters after CI).
        for proc in self.procs:
            proc.kill_group()

    def drop(self) -> None:
        self.stop_all()
        try:
            self.pg.execute(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")
        except psycopg.Error:
            pass

    # data ------------------------------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)

    def query(self, sql: str, params=None) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params=None):
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def create_terminals(self, count: int, prefix: str = "CH") -> dict[str, str]:
        keys = self.workdir / f"keys-{prefix}.json"
        out = self.python(
            "import json; from pathlib import Path; from terminals.simulator import ensure_terminals\n"
            f"print(json.dumps(ensure_terminals(count={count}, prefix={prefix!r}, keys_file=Path({str(keys)!r}))))"
        )
        return json.loads(out.strip().splitlines()[-1])

    def wake(self, drains: int = 4) -> None:
        self.manage("sync_wake", "--drains", str(drains))

    def lease_owner_pids(self) -> list[int]:
        rows = self.query("SELECT DISTINCT lease_owner FROM queue_messages_messagestate WHERE state = 'Processing'")
        pids = []
        for (owner,) in rows:
            parts = owner.split(":")
            if len(parts) >= 3 and parts[-2].isdigit():
                pids.append(int(parts[-2]))
        return pids

    def backlog(self) -> int:
        return self.scalar(
            "SELECT count(*) FROM queue_messages_messagestate WHERE state IN ('Received', 'Processing', 'Failed')"
        )


def _http_ok(url: str) -> bool:
    import requests

    return requests.get(url, timeout=2).status_code == 200


def build_template(pg: PrivatePostgres, redis: PrivateRedis, workdir: Path) -> None:
    """Create and migrate the template every scenario's database is cloned from."""
    pg.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        **BASE_SETTINGS,
        "DATABASE_URL": pg.url(TEMPLATE_DB),
        "Q_BROKER": redis.url,
        "SYNC_VAR_DIR": str(workdir),
        "DJANGO_SECRET_KEY": "chaos-" + "k" * 60,
        "DJANGO_SETTINGS_MODULE": "syncadmin.settings",
    }
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
    )
