"""SOAP ingest benchmark: batches of 100 through gunicorn (2 workers) on PostgreSQL.

In one run, against the same server and database:
  1. SOAP, raw XML clients (requests + a pre-rendered envelope: isolates the server's cost),
  2. the same batches as JSON to a plain Django view doing the same auth + ingest (reference),
  3. SOAP through zeep (what an integrator's Python client costs), plus zeep's own CPU per call.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/syncadmin_soap \\
    BENCH_Q_BROKER=redis://127.0.0.1:6379/1 .venv/bin/python bench/soap.py [--seconds 15] [--clients 4]

Prints accepted messages/s per phase, the SOAP / JSON ratio, p50/p99 latency per call.
The database must be PostgreSQL (it is migrated; the bench terminals' messages are deleted after).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")


def _ensure_database() -> None:
    """Create the bench database if it does not exist yet (it is migrated below)."""
    import environ
    import psycopg

    db = environ.Env.db_url_config(os.environ.get("DATABASE_URL", ""))
    if not db.get("ENGINE", "").endswith("postgresql"):
        raise SystemExit("bench/soap.py needs DATABASE_URL=postgres://...")
    with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname="postgres",
                         autocommit=True) as conn:  # fmt: skip
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


_ensure_database()

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from messages.models import Message, MessageEvent  # noqa: E402
from terminals.models import Terminal  # noqa: E402
from terminals.services import terminal_create, terminal_rotate_key  # noqa: E402
from terminals.simulator import make_client  # noqa: E402
from terminals.soap import WSSE_NS  # noqa: E402

BATCH = 100
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batch_dicts(prefix: str) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "MessageId": f"{prefix}-{i}",
            "MessageType": "product.upsert",
            "EntityKey": f"SKU-{i:04d}",
            "Sequence": i + 1,
            "CreatedAt": now,
            "Payload": json.dumps({"sku": f"SKU-{i:04d}", "name": "Tea 20 bags", "price": 2.49, "category": "drink"}),
        }
        for i in range(BATCH)
    ]


def soap_envelope(code: str, key: str, messages: list[dict]) -> bytes:
    items = "".join(
        "<t:SyncMessage>"
        f"<t:MessageId>{m['MessageId']}</t:MessageId><t:MessageType>{m['MessageType']}</t:MessageType>"
        f"<t:EntityKey>{m['EntityKey']}</t:EntityKey><t:Sequence>{m['Sequence']}</t:Sequence>"
        f"<t:CreatedAt>{m['CreatedAt']}</t:CreatedAt><t:Payload>{escape(m['Payload'])}</t:Payload>"
        "</t:SyncMessage>"
        for m in messages
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="urn:syncadmin:terminal:v1">'
        f'<s:Header><wsse:Security s:mustUnderstand="1" xmlns:wsse="{WSSE_NS}"><wsse:UsernameToken>'
        f'<wsse:Username>{code}</wsse:Username><wsse:Password Type="{PASSWORD_TEXT}">{key}</wsse:Password>'
        "</wsse:UsernameToken></wsse:Security></s:Header>"
        f"<s:Body><t:SubmitMessages><t:messages>{items}</t:messages></t:SubmitMessages></s:Body></s:Envelope>"
    ).encode()


class Phase:
    def __init__(self, name: str):
        self.name, self.lock = name, threading.Lock()
        self.latencies: list[float] = []
        self.accepted = self.calls = self.failures = 0
        self.elapsed = 0.0

    def record(self, seconds: float, accepted: int, ok: bool) -> None:
        with self.lock:
            self.calls += 1
            self.latencies.append(seconds)
            self.accepted += accepted
            self.failures += 0 if ok else 1

    def pct(self, p: float) -> float:
        values = sorted(self.latencies)
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000 if values else 0.0

    @property
    def rate(self) -> float:
        return self.accepted / self.elapsed if self.elapsed else 0.0

    def line(self) -> str:
        return (
            f"{self.name:<18} accepted/s={self.rate:8.0f}  calls={self.calls:5d}  failures={self.failures}  "
            f"p50={self.pct(50):6.1f} ms  p99={self.pct(99):6.1f} ms"
        )


def run_phase(phase: Phase, clients: list, seconds: float, call) -> Phase:
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    def worker(i, client):
        n = 0
        while time.monotonic() < deadline:
            n += 1
            t0 = time.perf_counter()
            try:
                accepted = call(client, f"{phase.name}-{i}-{n}-{uuid.uuid4().hex[:8]}")
                phase.record(time.perf_counter() - t0, accepted, accepted == BATCH)
            except Exception as exc:  # keep measuring; count it
                phase.record(time.perf_counter() - t0, 0, False)
                print(f"  {phase.name} client {i}: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.elapsed = time.monotonic() - started
    return phase


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1] != "postgresql":
        sys.exit("set DATABASE_URL to a PostgreSQL database (your own)")
    call_command("migrate", verbosity=0)

    credentials = {}
    for i in range(args.clients):
        code = f"BENCH-{i:02d}"
        t = Terminal.objects.filter(code=code).first()
        credentials[code] = terminal_rotate_key(terminal=t) if t else terminal_create(code=code)[1]

    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_soap_bench",
        "Q_BROKER": os.environ.get("BENCH_Q_BROKER", "redis://127.0.0.1:6379/1"),
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}", "syncadmin.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    soap_url = f"{base}/soap/terminal/v1/"
    try:
        for _ in range(100):
            try:
                requests.get(soap_url + "?wsdl", timeout=5).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.2)
        codes = sorted(credentials)

        def soap_raw(session_code, prefix):
            session, code = session_code
            body = soap_envelope(code, credentials[code], batch_dicts(prefix))
            r = session.post(soap_url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=60)
            r.raise_for_status()
            return r.content.count(b"<tns:Status>Accepted</tns:Status>")

        def json_post(session_code, prefix):
            session, code = session_code
            r = session.post(
                f"{base}/bench/json-ingest/",
                data=json.dumps(batch_dicts(prefix)),
                headers={"Content-Type": "application/json", "X-Terminal": code, "X-Key": credentials[code]},
                timeout=60,
            )
            r.raise_for_status()
            return sum(1 for x in r.json() if x["Status"] == "Accepted")

        def zeep_call(client, prefix):
            return sum(
                1
                for r in client.service.SubmitMessages(messages={"SyncMessage": batch_dicts(prefix)})
                if r.Status == "Accepted"
            )

        sessions = [(requests.Session(), c) for c in codes]
        # Warm-up: both workers import everything and open their database connections.
        run_phase(Phase("warmup"), sessions, 2, soap_raw)
        results = [
            run_phase(Phase("soap-raw-xml"), sessions, args.seconds, soap_raw),
            run_phase(Phase("json-reference"), sessions, args.seconds, json_post),
        ]
        zeep_clients = [make_client(soap_url, c, credentials[c]) for c in codes]
        results.append(run_phase(Phase("soap-zeep"), zeep_clients, args.seconds, zeep_call))

        # zeep's own CPU per call: building the request and parsing a 100-result reply, no network.
        client = zeep_clients[0]
        op = client.service._binding._operations["SubmitMessages"]
        reply = requests.post(
            soap_url,
            data=soap_envelope(codes[0], credentials[codes[0]], batch_dicts(f"zeepcost-{uuid.uuid4().hex}")),
            headers={"Content-Type": "text/xml; charset=utf-8"},
            timeout=60,
        ).content
        from lxml import etree

        build, parse = [], []
        for i in range(20):
            data = batch_dicts(f"x{i}")
            t0 = time.process_time()
            client.create_message(client.service, "SubmitMessages", messages={"SyncMessage": data})
            build.append(time.process_time() - t0)
            t0 = time.process_time()
            op.process_reply(etree.fromstring(reply))
            parse.append(time.process_time() - t0)
        zeep_build, zeep_parse = statistics.median(build) * 1000, statistics.median(parse) * 1000
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    soap, ref = results[0], results[1]
    print(
        f"SOAP ingest benchmark: batches of {BATCH}, {args.clients} concurrent clients, "
        f"gunicorn {args.workers} sync workers, PostgreSQL, {args.seconds:g}s per phase, {os.cpu_count()} CPUs"
    )
    for p in results:
        print("  " + p.line())
    print(f"  SOAP / JSON throughput ratio (raw-XML clients): {soap.rate / ref.rate:.2f}" if ref.rate else "")
    print(f"  zeep client CPU per 100-message call: build {zeep_build:.1f} ms + parse reply {zeep_parse:.1f} ms")
    target = 5000
    print(f"  target >= {target} accepted msg/s through SOAP: {'MET' if soap.rate >= target else 'NOT MET'}")

    # Leave the database as we found it (only the bench terminals' rows).
    bench = Terminal.objects.filter(code__startswith="BENCH-")
    MessageEvent.objects.filter(message__terminal__in=bench).delete()
    Message.objects.filter(terminal__in=bench).delete()


if __name__ == "__main__":
    main()
