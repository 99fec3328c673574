"""gunicorn configuration for a SyncAdmin web node (used by deploy/systemd/syncadmin-web.service).

    gunicorn -c deploy/gunicorn.conf.py syncadmin.wsgi:application

Every value can be overridden from the environment (GUNICORN_*), so one file serves every node.
nginx in front terminates TLS, enforces the SOAP body limit and buffers slow clients; gunicorn
listens on loopback (or a private address) only.
"""

import multiprocessing
import os

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
# Load the application before forking: workers share its memory, and a broken build fails at
# start instead of in every worker.
preload_app = True
# nginx sets X-Forwarded-Proto; trust it only from the proxy on this machine. (X-Forwarded-For is
# read by the application, from the proxies in SYNC_TRUSTED_PROXIES only.)
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Logs to stdout/stderr: journald (systemd) collects them.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# Request line and header limits stay at gunicorn's defaults; the body limit is nginx's
# client_max_body_size and Django's SYNC_MAX_BODY_BYTES.
proc_name = "syncadmin-web"
