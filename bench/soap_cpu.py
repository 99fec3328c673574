"""Server-side CPU per 100-message SubmitMessages call, in-process (no HTTP, no gunicorn).

Calls the WSGI application directly with a pre-rendered envelope (the same one bench/soap.py's
raw-XML clients send) and, for reference, the bench-only JSON ingest view with the same
batch; reports the median process CPU time per call (the database's own CPU is not counted:
it runs in another process). Meant for comparing server-side changes on a noisy machine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/syncadmin_soapcpu \\
    BENCH_Q_BROKER=redis://127.0.0.1:6379/1 .venv/bin/python bench/soap_cpu.py [--calls 200] [--profile soap|json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_soap_bench"
os.environ.setdefault("LOG_LEVEL", "WARNING")
if os.environ.get("BENCH_Q_BROKER"):
    os.environ["Q_BROKER"] = os.environ["BENCH_Q_BROKER"]

from bench.soap import _ensure_database, batch_dicts, soap_envelope  # noqa: E402  (sets up Django)

_ensure_database()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402

from messages.models import Message, MessageEvent  # noqa: E402
from terminals.models import Terminal  # noqa: E402
from terminals.services import terminal_create, terminal_rotate_key  # noqa: E402


def wsgi_call(app, path: str, body: bytes, content_type: str, headers: dict | None = None) -> bytes:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        **(headers or {}),
    }
    status = []
    out = app(environ, lambda s, h, exc_info=None: status.append(s))
    data = b"".join(out)
    if hasattr(out, "close"):
        out.close()
    if not status[0].startswith("200"):
        raise SystemExit(f"{path}: {status[0]} {data[:500]!r}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--profile", choices=["soap", "json"], default=None, help="cProfile (CPU time) this phase instead"
    )
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    code = "BENCH-CPU"
    t = Terminal.objects.filter(code=code).first()
    key = terminal_rotate_key(terminal=t) if t else terminal_create(code=code)[1]
    app = WSGIHandler()

    # Each phase: (build the request body for a prefix, send it); only the sending is timed.
    def soap(body):
        data = wsgi_call(app, "/soap/terminal/v1/", body, "text/xml; charset=utf-8")
        assert data.count(b">Accepted<") == 100, data[:500]

    def json_ref(body):
        data = wsgi_call(
            app, "/bench/json-ingest/", body, "application/json", {"HTTP_X_TERMINAL": code, "HTTP_X_KEY": key}
        )
        assert data.count(b'"Accepted"') == 100, data[:500]

    phases = {
        "soap": (lambda prefix: soap_envelope(code, key, batch_dicts(prefix)), soap),
        "json": (lambda prefix: json.dumps(batch_dicts(prefix)).encode(), json_ref),
    }
    try:
        for build, send in phases.values():  # warm-up: imports, connections, caches
            for _ in range(20):
                send(build(f"w-{uuid.uuid4().hex[:12]}"))
        if args.profile:
            import cProfile
            import pstats

            build, send = phases[args.profile]
            bodies = [build(f"p-{uuid.uuid4().hex[:12]}") for _ in range(args.calls)]
            prof = cProfile.Profile(time.process_time)  # CPU only: waits on the database do not count
            prof.enable()
            for body in bodies:
                send(body)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(60)
            pstats.Stats(prof).sort_stats("tottime").print_stats(40)
            return
        for name, (build, send) in phases.items():
            cpu, wall = [], []
            for _ in range(args.calls):
                body = build(f"{name}-{uuid.uuid4().hex[:12]}")
                c0, w0 = time.process_time(), time.perf_counter()
                send(body)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            print(
                f"{name:5s} per 100-message call: CPU median {statistics.median(cpu) * 1000:6.2f} ms "
                f"(mean {statistics.fmean(cpu) * 1000:6.2f}, min {min(cpu) * 1000:6.2f}), wall median {statistics.median(wall) * 1000:6.2f} ms"
            )
    finally:
        MessageEvent.objects.filter(message__terminal__code=code).delete()
        Message.objects.filter(terminal__code=code).delete()


if __name__ == "__main__":
    main()
