"""Peers of the engine, measured in the same run as bench/engine.py's drain: PgQueuer draining
the same number of jobs with no-op handlers and with the engine's work (pgqueuer_drain.py), in
the peers' own virtualenv (environment.py), each on a fresh PostgreSQL database of its own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bench._common import drop_database, fresh_database
from bench.peers.environment import peers_python, pinned

HERE = Path(__file__).resolve().parent
PGQUEUER = next(line.split("==")[1] for line in pinned() if line.lower().startswith("pgqueuer=="))
# (label, pgqueuer_drain.py's --work)
PGQUEUER_FORMS = [(f"PgQueuer {PGQUEUER}, no-op jobs", "noop"), (f"PgQueuer {PGQUEUER}, same work", "same")]


def pgqueuer_drains(**kwargs) -> list[tuple[str, float]]:
    """(label, msg/s) of each PgQueuer form (``pgqueuer_drain_results``' arguments)."""
    return [(result["label"], result["rate"]) for result in pgqueuer_drain_results(**kwargs)]


def pgqueuer_drain_results(*, pg: str, database: str, jobs: int, terminals: int, workers: int, batch: int,
                           synchronous_commit: bool, noop_only: bool = False) -> list[dict]:  # fmt: skip
    """What pgqueuer_drain.py printed for each PgQueuer form (``noop_only``: the no-op form alone),
    with its ``label``: msg/s, and CPU µs a job of the server and of the workers over the drain. The
    database ``database`` is made afresh for each and dropped after."""
    python = peers_python()
    results = []
    for label, work in PGQUEUER_FORMS[:1] if noop_only else PGQUEUER_FORMS:
        dsn = fresh_database(pg, database)
        command = [str(python), str(HERE / "pgqueuer_drain.py"), "--dsn", dsn, "--jobs", str(jobs), "--terminals",
                   str(terminals), "--workers", str(workers), "--batch", str(batch), "--work", work]  # fmt: skip
        if synchronous_commit:
            command.append("--synchronous-commit")
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        finally:
            drop_database(pg, database)
        if run.returncode:
            raise SystemExit(f"{label} failed:\n{run.stderr[-3000:]}")
        results.append({"label": label, **json.loads(run.stdout.strip().splitlines()[-1])})
    return results
