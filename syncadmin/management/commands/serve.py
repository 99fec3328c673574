"""Run the whole hub in one terminal: the web server (gunicorn) and a worker cluster (sync_cluster)."""

import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run gunicorn and a django-q2 worker cluster together until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("SYNC_BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args, bind, web_workers, **options):
        python = sys.executable
        # SOAP request metrics are counted in each gunicorn worker: prometheus_client's
        # multiprocess mode sums them for /metrics. The directory must be empty at start.
        prom_dir = settings.VAR_DIR / "prometheus"
        shutil.rmtree(prom_dir, ignore_errors=True)
        prom_dir.mkdir(parents=True)
        # A terminal, not a journal: plain application lines (manage.py sets LOG_FORMAT=plain for
        # serve unless it is set) and gunicorn's own access line, not deploy/gunicorn.conf.py's JSON.
        env = {**os.environ, "LOG_FORMAT": settings.LOG_FORMAT}
        web_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir)}
        # gunicorn's control socket in this checkout's var dir, not the per-user default that
        # every gunicorn on the machine would fight over.
        control_socket = settings.VAR_DIR / "run" / "serve-gunicorn.ctl"
        procs = [
            subprocess.Popen(
                [
                    python, "-m", "gunicorn", "syncadmin.wsgi:application",
                    "--bind", bind, "--workers", str(web_workers), "--threads", "4",
                    "--access-logfile", "-", "--graceful-timeout", "20",
                    "--control-socket", str(control_socket),
                ],
                start_new_session=True,
                env=web_env,
            ),
            # Own session: Ctrl-C reaches only this command, which then stops the cluster through
            # its main process. (A SIGTERM sent to every qcluster process at once can leave
            # django-q2's main process waiting forever for a sentinel that is already gone.)
            subprocess.Popen(
                [python, "manage.py", "sync_cluster"], cwd=settings.BASE_DIR, env=env, start_new_session=True
            ),
        ]  # fmt: skip
        self.stdout.write(
            self.style.SUCCESS(f"SyncAdmin is running: http://{bind}/  (SOAP: http://{bind}/soap/terminal/v1/?wsdl)")
        )
        self.stdout.write("Press Ctrl-C to stop web server and workers.")
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=settings.Q_TIMEOUT)
                except subprocess.TimeoutExpired:
                    p.kill()
        codes = [p.returncode for p in procs]
        if not stopping:
            self.stderr.write(f"a child process exited unexpectedly: {codes}")
            sys.exit(1)
