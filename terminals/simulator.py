"""A terminal simulator: N concurrent store terminals driving the SOAP API through zeep.

Importable (tests and the chaos suite reuse ``run_simulation``); the management command
``simulate_terminals`` is a thin wrapper around it. Each terminal is a thread with its own
zeep client that behaves like a till: it submits retail traffic in batches (products, prices,
stock, sales; the same entities again and again so sequences matter; some deletes), a
configurable fraction of bad payloads, occasionally re-sends a batch whose reply it "lost"
(those come back Duplicate), heartbeats, reports its own entity counts and fetches and
acknowledges the updates the hub pushes back.

This module is a client: it speaks only SOAP to the hub. Creating the simulated terminals
(``ensure_terminals``) is the one place it touches the hub's database, through services.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from django.conf import settings
from zeep import Client, Settings
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from terminals.models import Terminal
from terminals.services import api_key_hash, terminal_create, terminal_rotate_key

ENTITY_WEIGHTS = [("product", 3), ("price", 3), ("stock", 5), ("sale", 4)]
CATALOGUE_SIZE = 60  # SKUs per terminal: small enough that keys repeat within a minute


@dataclass
class SimConfig:
    url: str
    terminals: int = 3
    rate: float = 10.0  # messages per second, per terminal
    duration: float = 10.0  # seconds
    bad_fraction: float = 0.02
    duplicate_fraction: float = 0.03  # chance that a batch is sent again as if its reply was lost
    max_batch: int = 100
    heartbeat_every: float = 5.0
    counts_every: float = 15.0
    fetch_every: float = 5.0
    seed: int | None = None
    timeout: float = 30.0


@dataclass
class Summary:
    terminals: int = 0
    duration: float = 0.0
    calls: Counter = field(default_factory=Counter)  # per operation
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    bad_sent: int = 0
    faults: Counter = field(default_factory=Counter)  # per fault code
    errors: Counter = field(default_factory=Counter)  # transport errors per exception class
    updates_fetched: int = 0
    updates_acked: int = 0
    heartbeats: int = 0
    counts_reported: int = 0
    latencies: dict = field(default_factory=lambda: defaultdict(list))  # operation -> seconds

    def count_answer(self, status: str) -> None:
        """Tally one SubmitMessages answer (call with the lock held)."""
        if status == "Accepted":
            self.accepted += 1
        elif status == "Duplicate":
            self.duplicates += 1
        else:
            self.rejected += 1

    def percentile(self, op: str | None, pct: float) -> float:
        values = sorted(self.latencies[op] if op else [v for vs in self.latencies.values() for v in vs])
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(round(pct / 100 * (len(values) - 1))))]

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())

    def as_dict(self) -> dict:
        return {
            "terminals": self.terminals,
            "duration_s": round(self.duration, 2),
            "calls": dict(self.calls),
            "sent": self.sent,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "bad_payloads_sent": self.bad_sent,
            "faults": dict(self.faults),
            "errors": dict(self.errors),
            "updates_fetched": self.updates_fetched,
            "updates_acked": self.updates_acked,
            "heartbeats": self.heartbeats,
            "counts_reported": self.counts_reported,
            "submit_latency_ms": {f"p{p}": round(self.percentile("SubmitMessages", p) * 1000, 1) for p in (50, 95, 99)},
            "all_calls_latency_ms": {f"p{p}": round(self.percentile(None, p) * 1000, 1) for p in (50, 95, 99)},
        }

    def render(self) -> str:
        d = self.as_dict()
        rate = self.accepted / self.duration if self.duration else 0.0
        lines = [
            f"terminals={d['terminals']} duration={d['duration_s']}s calls={sum(self.calls.values())} "
            + " ".join(f"{k}={v}" for k, v in sorted(self.calls.items())),
            f"sent={self.sent} accepted={self.accepted} duplicates={self.duplicates} rejected={self.rejected} "
            f"faults={self.total_faults} errors={sum(self.errors.values())} bad_payloads_sent={self.bad_sent} "
            f"accepted/s={rate:.0f}",
            f"updates fetched={self.updates_fetched} acked={self.updates_acked} heartbeats={self.heartbeats} "
            f"counts_reported={self.counts_reported}",
            "SubmitMessages latency ms: "
            + " ".join(f"{k}={v}" for k, v in d["submit_latency_ms"].items())
            + " | all calls: "
            + " ".join(f"{k}={v}" for k, v in d["all_calls_latency_ms"].items()),
        ]
        if self.faults:
            lines.append("faults by code: " + ", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())))
        if self.errors:
            lines.append("transport errors: " + ", ".join(f"{k}={v}" for k, v in sorted(self.errors.items())))
        return "\n".join(lines)


# --- provisioning -----------------------------------------------------------------------------------


def ensure_terminals(*, count: int, prefix: str = "SIM", keys_file: Path | None = None) -> dict[str, str]:
    """Codes SIM-001.. with a working key each: created if missing, known keys reused.

    Keys are kept in ``keys_file`` (under SYNC_VAR_DIR by default) so repeated runs do not
    rotate them; an existing terminal whose key is not known gets a new one (rotated).
    """
    keys_file = keys_file or Path(settings.VAR_DIR) / "simulator_keys.json"
    known = json.loads(keys_file.read_text()) if keys_file.exists() else {}
    credentials = {}
    for i in range(1, count + 1):
        code = f"{prefix}-{i:03d}"
        terminal = Terminal.objects.filter(code=code).first()
        if terminal is None:
            terminal, key = terminal_create(
                code=code, name=f"Simulated till {i}", store=f"Sim store {(i - 1) // 4 + 1}"
            )
        elif known.get(code) and api_key_hash(known[code]) == terminal.api_key_hash:
            key = known[code]
        else:
            key = terminal_rotate_key(terminal=terminal)
        if not terminal.enabled:
            Terminal.objects.filter(pk=terminal.pk).update(enabled=True)
        credentials[code] = key
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.write_text(json.dumps({**known, **credentials}, indent=1))
    keys_file.chmod(0o600)
    return credentials


# --- one terminal -------------------------------------------------------------------------------------


def make_client(url: str, code: str, key: str, timeout: float = 30.0):
    """A zeep client for one terminal, authenticating with a WS-Security UsernameToken."""
    session = requests.Session()
    transport = Transport(session=session, timeout=timeout, operation_timeout=timeout)
    wsdl = url if "?wsdl" in url else url.rstrip("/") + "/?wsdl"
    return Client(wsdl, transport=transport, wsse=UsernameToken(code, key), settings=Settings(strict=True))


class SimulatedTerminal:
    def __init__(self, code: str, key: str, config: SimConfig, summary: Summary, lock: threading.Lock, rng):
        self.code, self.key, self.config = code, key, config
        self.summary, self.lock, self.rng = summary, lock, rng
        self.sequences: Counter = Counter()
        self.live: dict[str, set[str]] = defaultdict(set)  # what this till believes exists
        self.sales = 0

    # Traffic ---------------------------------------------------------------------------------------

    def _message(self) -> tuple[dict, bool]:
        rng = self.rng
        entity = rng.choices([e for e, _ in ENTITY_WEIGHTS], weights=[w for _, w in ENTITY_WEIGHTS])[0]
        sku = f"SKU-{rng.randrange(CATALOGUE_SIZE):04d}"
        op = "upsert"
        if entity == "sale":
            self.sales += 1
            key = f"{self.code}-S{self.sales:07d}"
            qty = rng.randint(1, 3)
            payload = {"sale_id": key, "lines": [{"sku": sku, "qty": qty, "price": rng.randint(99, 4999) / 100}]}
            payload["total"] = round(sum(line["qty"] * line["price"] for line in payload["lines"]), 2)
        elif entity == "product":
            key = sku
            if key in self.live["product"] and rng.random() < 0.1:
                op, payload = "delete", {"sku": sku}
            else:
                payload = {"sku": sku, "name": f"Item {sku}", "category": rng.choice(["food", "drink", "home"])}
        elif entity == "price":
            key = sku
            payload = {"sku": sku, "price": rng.randint(99, 4999) / 100, "currency": "EUR"}
        else:
            key = sku
            payload = {"sku": sku, "qty": rng.randint(0, 500)}
        self.sequences[(entity, key)] += 1
        message = {
            "MessageId": f"{self.code}-{uuid.uuid4().hex}",
            "MessageType": f"{entity}.{op}",
            "EntityKey": key,
            "Sequence": self.sequences[(entity, key)],
            "CreatedAt": datetime.now(UTC),
            "Payload": json.dumps(payload),
        }
        bad = rng.random() < self.config.bad_fraction
        if bad:
            kind = rng.choice(["json", "type", "missing"])
            if kind == "json":
                message["Payload"] = '{"sku": "' + key + '", "price": '  # truncated JSON: dead-lettered
            elif kind == "type":
                message["MessageType"] = "promo.apply"  # no handler: dead-lettered
            else:
                message["MessageId"] = None  # cannot be stored: Rejected
        elif op == "delete":
            self.live[entity].discard(key)
        else:
            self.live[entity].add(key)
        return message, bad

    # Calls --------------------------------------------------------------------------------------------

    def _call(self, client, op: str, **kwargs):
        started = time.perf_counter()
        try:
            return getattr(client.service, op)(**kwargs)
        except Fault as exc:
            with self.lock:
                self.summary.faults[str(exc.code).rpartition(":")[2] or "unknown"] += 1
            return None
        except Exception as exc:  # transport errors: the run goes on, like a till would
            with self.lock:
                self.summary.errors[type(exc).__name__] += 1
            return None
        finally:
            elapsed = time.perf_counter() - started
            with self.lock:
                self.summary.calls[op] += 1
                self.summary.latencies[op].append(elapsed)

    def submit(self, client, batch: list[dict]) -> None:
        results = self._call(client, "SubmitMessages", messages={"SyncMessage": batch})
        with self.lock:
            self.summary.sent += len(batch)
            for r in results or []:
                self.summary.count_answer(r.Status)

    def heartbeat(self, client) -> None:
        info = {"AppVersion": "sim-1.0", "LocalBacklog": self.rng.randint(0, 5), "TerminalTime": datetime.now(UTC)}
        if self._call(client, "Heartbeat", info=info) is not None:
            with self.lock:
                self.summary.heartbeats += 1

    def report_counts(self, client) -> None:
        now = datetime.now(UTC)
        counts = [{"EntityType": e, "Count": len(self.live[e]), "AsOf": now} for e, _ in ENTITY_WEIGHTS]
        if self._call(client, "ReportCounts", counts={"EntityCount": counts}) is not None:
            with self.lock:
                self.summary.counts_reported += len(counts)

    def fetch_and_ack(self, client) -> None:
        updates = self._call(client, "FetchUpdates", maxCount=50) or []
        if not updates:
            return
        ids = [u.UpdateId for u in updates]
        acked = self._call(client, "AckUpdates", updateIds={"string": ids})
        with self.lock:
            self.summary.updates_fetched += len(updates)
            self.summary.updates_acked += acked or 0

    def run(self, deadline: float) -> None:
        cfg = self.config
        try:
            client = make_client(cfg.url, self.code, self.key, cfg.timeout)
        except Exception as exc:
            with self.lock:
                self.summary.errors[f"wsdl:{type(exc).__name__}"] += 1
            return
        batch_size = max(1, min(cfg.max_batch, int(round(cfg.rate))))
        interval = batch_size / cfg.rate if cfg.rate > 0 else 1.0
        now = time.monotonic()
        next_batch = now + self.rng.uniform(0, interval)  # spread the tills out
        next_heartbeat, next_counts, next_fetch = now, now + cfg.counts_every / 2, now
        previous: list[dict] = []
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_heartbeat:
                self.heartbeat(client)
                next_heartbeat = now + cfg.heartbeat_every
            if now >= next_fetch:
                self.fetch_and_ack(client)
                next_fetch = now + cfg.fetch_every
            if now >= next_counts:
                self.report_counts(client)
                next_counts = now + cfg.counts_every
            if now >= next_batch:
                if previous and self.rng.random() < cfg.duplicate_fraction:
                    batch = previous  # the reply was "lost": the till sends the same batch again
                else:
                    pairs = [self._message() for _ in range(batch_size)]
                    batch = [m for m, _ in pairs]
                    with self.lock:
                        self.summary.bad_sent += sum(1 for _, bad in pairs if bad)
                self.submit(client, batch)
                previous = batch
                next_batch += interval
                if next_batch < time.monotonic() - interval:  # fell behind: do not burst to catch up
                    next_batch = time.monotonic()
            sleep = min(next_batch, next_heartbeat, next_fetch, next_counts, deadline) - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
        self.report_counts(client)  # a final report so reconciliation sees the end state
        client.transport.session.close()


def run_simulation(
    config: SimConfig, credentials: dict[str, str], *, terminal=SimulatedTerminal, grace: float | None = None
) -> Summary:
    """Run every terminal in its own thread until ``config.duration`` is over; returns the summary.

    ``terminal`` builds each terminal (``SimulatedTerminal`` or a subclass, called with code, key,
    config, summary, lock and its own random generator); ``grace`` is how long past the duration
    to wait for the threads (default: four request timeouts).
    """
    summary = Summary(terminals=len(credentials))
    lock = threading.Lock()
    seed = config.seed if config.seed is not None else random.randrange(2**32)
    started = time.monotonic()
    deadline = started + config.duration
    threads = []
    for i, (code, key) in enumerate(sorted(credentials.items())):
        term = terminal(code, key, config, summary, lock, random.Random(seed + i))
        t = threading.Thread(target=term.run, args=(deadline,), name=f"sim-{code}", daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout=config.duration + (4 * config.timeout if grace is None else grace))
    summary.duration = time.monotonic() - started
    return summary
