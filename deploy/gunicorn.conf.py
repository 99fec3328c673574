"""gunicorn configuration for a SyncAdmin web node (used by deploy/systemd/syncadmin-web.service).

    gunicorn -c deploy/gunicorn.conf.py syncadmin.wsgi:application

Every value can be overridden from the environment (GUNICORN_*), so one file serves every node.
nginx in front terminates TLS, enforces the SOAP body limit and buffers slow clients; gunicorn
listens on loopback (or a private address) only. tests/deploy/test_production_stack.py runs this
file behind nginx with the unit's command line and environment file.
"""

import multiprocessing
import os
import re
import shutil
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers with threads: requests are short database round trips (SOAP submit, console
# pages); threads overlap the waits without an async stack. 2 x cores is a good start.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
worker_class = "gthread"
# A SubmitMessages of 500 messages commits in well under a second; 30 s means something is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
# On SIGTERM (deploy, systemctl stop) finish requests in flight before exiting.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 25))
keepalive = 5
# Recycle workers now and then (with jitter so they do not all restart together): bounds any leak.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 500))
# Each worker imports the application itself (no preload_app): `systemctl reload` (HUP) after an
# upgrade then starts workers on the NEW code. With preload_app the master keeps the code it
# imported at start and forks every new worker from it, so a reload silently kept the old release
# (tests/deploy/test_gunicorn_reload.py). The cost is the memory the workers would have shared.
preload_app = False
# nginx sets X-Forwarded-Proto; trust it only from the proxy on this machine. (X-Forwarded-For is
# read by the application, from the proxies in SYNC_TRUSTED_PROXIES only.)
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Request line and header limits stay at gunicorn's defaults; the body limit is nginx's
# client_max_body_size and Django's SYNC_MAX_BODY_BYTES.
proc_name = "syncadmin-web"

# --- This instance's own directory: control socket, metrics files ---------------------------------
# gunicorn (25.1+) opens a control socket for `gunicornc`; its default, $XDG_RUNTIME_DIR/gunicorn.ctl
# or ~/.gunicorn/gunicorn.ctl, is one path per user: a second instance unlinks the first one's
# socket and takes it over, and whichever stops first deletes the other's. So each instance gets
# its own directory: systemd's RuntimeDirectory= (the unit sets RuntimeDirectory=%N, created empty
# at each start and removed at stop; systemd exports it as RUNTIME_DIRECTORY), else
# GUNICORN_RUNTIME_DIR, else one per bind address under SYNC_VAR_DIR (two instances on one host
# never share a bind address).
_var_dir = os.environ.get("SYNC_VAR_DIR") or str(Path(__file__).resolve().parent.parent / "var")
runtime_dir = (
    os.environ.get("RUNTIME_DIRECTORY")
    or os.environ.get("GUNICORN_RUNTIME_DIR")
    or os.path.join(_var_dir, "run", "web-" + re.sub(r"[^\w.-]", "_", bind))
)
control_socket = os.path.join(runtime_dir, "gunicorn.ctl")
control_socket_mode = 0o600

# SOAP request metrics are counted in each worker process (syncadmin/lib/process_metrics.py):
# prometheus_client's multiprocess mode sums every worker's files for /metrics, which needs
# PROMETHEUS_MULTIPROC_DIR in the environment before the application is imported. raw_env sets it in
# the master's environment at start; the workers inherit it before they import the application. Web
# only: the worker cluster, which shares the environment file, counts nothing per process. (This
# file must not import prometheus_client: it chooses between per-process and multiprocess values
# once, at import, before raw_env is applied. The families are counters and histograms: no live
# gauge needs multiprocess.mark_process_dead when a worker exits.)
prometheus_dir = os.path.join(runtime_dir, "prometheus")
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={prometheus_dir}"]


def on_starting(server):
    """Start with an empty metrics directory: files left by an earlier run would be summed in. (Runs
    once per start, not on a HUP reload, and before any worker exists.)"""
    shutil.rmtree(prometheus_dir, ignore_errors=True)
    os.makedirs(prometheus_dir, mode=0o700)


# --- Logs: one format per process ------------------------------------------------------------------
# gunicorn's own lines and its access log in the application's format (LOG_FORMAT, JSON by
# default: syncadmin/lib/logs.py), so the whole unit's journal is one format. The access lines
# carry the request's fields as JSON keys (AccessLogFields). Access lines to stdout, the rest to
# stderr (as the application's): journald collects both.
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
_log_format = os.environ.get("LOG_FORMAT", "json")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "syncadmin.lib.logs.JsonFormatter"},
        "plain": {"()": "syncadmin.lib.logs.PlainFormatter"},
    },
    "filters": {"access": {"()": "syncadmin.lib.logs.AccessLogFields"}},
    "handlers": {
        "gunicorn": {"class": "logging.StreamHandler", "formatter": _log_format, "stream": "ext://sys.stderr"},
        "access": {
            "class": "logging.StreamHandler",
            "formatter": _log_format,
            "filters": ["access"],
            "stream": "ext://sys.stdout",
        },
    },
    # The root logger is the application's (Django's LOGGING sets it up as the app loads): an empty
    # entry replaces gunicorn's default one and leaves root alone, also on a HUP reload.
    "root": {},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["gunicorn"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
    },
}
