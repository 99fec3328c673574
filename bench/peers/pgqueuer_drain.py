"""PgQueuer as a same-run reference: N jobs drained by W worker processes; prints one JSON line.

Run by bench/engine.py (bench/peers/__init__.py) with the peers' virtualenv's Python
(bench/peers/environment.py), on a PostgreSQL database of its own that the caller made empty:

    bench/.peers-venv/bin/python bench/peers/pgqueuer_drain.py --dsn postgres://.../db --work same

It imports no project code (the project's packages are not in that virtualenv). ``--work``:

- ``noop``: the job handler does nothing: PgQueuer's own dequeue, status log and completion;
- ``same``: the engine's work for one message, in one transaction on a connection of the
  worker's pool: the central upsert with the sequence check (``WHERE last_sequence <
  excluded.last_sequence``, as the engine's), the live counter when it created the entity, and
  one audit row. Deletes are applied as upserts (as bench/engine_ceiling.py's forms do): the
  engine does a little more for them.

The jobs carry bench/engine.py's mix (terminals one after another, five entity types, repeated
keys so sequences matter, 3 % deletes). The clock starts when every worker has connected and
registered, and stops when the last one has exited (PgQueuer's drain mode: it exits once the
queue is empty and its tasks are done); then the script checks the queue is empty and, for
``same``, that every job wrote its audit row, so a drain that skipped work cannot look fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.types import QueueExecutionMode

ENTITIES = ["product", "price", "stock", "sale", "customer"]  # bench/engine.py's
ENTRYPOINT = "apply"

SCHEMA = """
CREATE TABLE peer_central (id bigserial PRIMARY KEY, entity_type varchar(40) NOT NULL,
    entity_key varchar(128) NOT NULL, terminal_code varchar(64) NOT NULL, data jsonb NOT NULL,
    last_sequence bigint NOT NULL, deleted boolean NOT NULL, last_job bigint, updated_at timestamptz NOT NULL,
    UNIQUE (terminal_code, entity_type, entity_key));
CREATE TABLE peer_counter (id bigserial PRIMARY KEY, terminal_code varchar(64) NOT NULL,
    entity_type varchar(40) NOT NULL, live_count bigint NOT NULL, updated_at timestamptz NOT NULL,
    UNIQUE (terminal_code, entity_type));
CREATE TABLE peer_audit (id bigserial PRIMARY KEY, job_id bigint NOT NULL, entity_type varchar(40) NOT NULL,
    entity_key varchar(128) NOT NULL, terminal_code varchar(64) NOT NULL, sequence bigint NOT NULL,
    at timestamptz NOT NULL, actor varchar(150) NOT NULL, reason text NOT NULL);
"""

UPSERT = """INSERT INTO peer_central (entity_type, entity_key, terminal_code, data, last_sequence, deleted, last_job,
    updated_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, clock_timestamp())
ON CONFLICT (terminal_code, entity_type, entity_key) DO UPDATE SET data = excluded.data,
    last_sequence = excluded.last_sequence, deleted = excluded.deleted, last_job = excluded.last_job,
    updated_at = excluded.updated_at
WHERE peer_central.last_sequence < excluded.last_sequence
RETURNING xmax = 0"""
COUNTER = """INSERT INTO peer_counter (terminal_code, entity_type, live_count, updated_at)
VALUES ($1, $2, 1, clock_timestamp()) ON CONFLICT (terminal_code, entity_type)
DO UPDATE SET live_count = peer_counter.live_count + 1, updated_at = excluded.updated_at"""
AUDIT = """INSERT INTO peer_audit (job_id, entity_type, entity_key, terminal_code, sequence, at, actor, reason)
VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6, $7)"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", required=True, help="an empty database of its own")
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--terminals", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=100, help="PgQueuer's dequeue batch size")
    p.add_argument("--pool", type=int, default=8, help="connections per worker for the jobs' work (--work same)")
    p.add_argument("--work", choices=["noop", "same"], default="noop")
    p.add_argument("--synchronous-commit", action="store_true", help="default: off, as the engine's drains")
    return p.parse_args(argv)


def payloads(jobs: int, terminals: int) -> list[bytes]:
    """bench/engine.py's messages as job payloads: one terminal after another."""
    rng = random.Random(7)
    per_terminal = jobs // terminals
    seqs: dict = {}
    out = []
    for t in range(terminals):
        code = f"BENCH-{t:03d}"
        for i in range(per_terminal):
            entity = rng.choice(ENTITIES)
            key = f"{entity.upper()}-{rng.randint(1, 2000) if entity != 'sale' else i:06d}"
            seq = seqs[(code, entity, key)] = seqs.get((code, entity, key), 0) + 1
            op = "delete" if entity != "sale" and rng.random() < 0.03 else "upsert"
            data = {"key": key, "price": rng.randint(100, 99999) / 100, "qty": rng.randint(0, 500)}
            out.append(json.dumps({"t": code, "e": entity, "k": key, "s": seq, "op": op, "d": data}).encode())
    return out


def server_settings(args) -> dict:
    return {} if args.synchronous_commit else {"synchronous_commit": "off"}


async def setup(args) -> int:
    conn = await asyncpg.connect(args.dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
        await conn.execute(SCHEMA)
        jobs = payloads(args.jobs, args.terminals)
        queries = Queries(AsyncpgDriver(conn))
        for start in range(0, len(jobs), 5000):
            chunk = jobs[start : start + 5000]
            await queries.enqueue([ENTRYPOINT] * len(chunk), chunk, [0] * len(chunk))
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")  # as before each of bench/engine.py's drains (_common.checkpoint says why)
        return len(jobs)
    finally:
        await conn.close()


def worker(args, name: str, ready, cpu, index: int, finished, measured) -> None:
    asyncio.run(_worker(args, name, ready, cpu, index, finished, measured))


async def _worker(args, name: str, ready, cpu, index: int, finished, measured) -> None:
    conn = await asyncpg.connect(args.dsn, server_settings=server_settings(args))
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    pool = None
    if args.work == "same":
        pool = await asyncpg.create_pool(args.dsn, min_size=args.pool, max_size=args.pool,
                                         server_settings=server_settings(args))  # fmt: skip

        @qm.entrypoint(ENTRYPOINT)
        async def apply(job) -> None:
            p = json.loads(job.payload)
            async with pool.acquire() as c, c.transaction():
                created = await c.fetchval(UPSERT, p["e"], p["k"], p["t"], json.dumps(p["d"]), p["s"],
                                           p["op"] == "delete", job.id)  # fmt: skip
                if created:
                    await c.execute(COUNTER, p["t"], p["e"])
                reason = "no-op" if created is None else "applied"
                await c.execute(AUDIT, job.id, p["e"], p["k"], p["t"], p["s"], name, reason)
    else:

        @qm.entrypoint(ENTRYPOINT)
        async def apply(job) -> None:
            return None

    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    started = time.process_time()  # the drain's CPU only, not the worker's start
    await qm.run(batch_size=args.batch, mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1))
    cpu[index] = time.process_time() - started
    # The connections stay open until the parent has read the server's CPU: a backend that has
    # exited takes its CPU seconds with it.
    with finished.get_lock():
        finished.value += 1
    await asyncio.get_running_loop().run_in_executor(None, measured.wait)
    if pool is not None:
        await pool.close()
    await conn.close()


async def check(args, total: int) -> list[str]:
    conn = await asyncpg.connect(args.dsn)
    try:
        left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
        problems = [f"{left} jobs left in the queue"] if left else []
        if args.work == "same":
            audited = await conn.fetchval("SELECT count(DISTINCT job_id) FROM peer_audit")
            if audited != total:
                problems.append(f"{audited} jobs audited of {total}")
        return problems
    finally:
        await conn.close()


def main(argv=None) -> None:
    args = parse_args(argv)
    total = asyncio.run(setup(args))
    ready = mp.Barrier(args.workers + 1)
    cpu, finished, measured = mp.Array("d", args.workers), mp.Value("i", 0), mp.Event()
    procs = [mp.Process(target=worker, args=(args, f"pgq{i}", ready, cpu, i, finished, measured))
             for i in range(args.workers)]  # fmt: skip
    for p in procs:
        p.start()
    ready.wait(timeout=120)
    started, server = time.perf_counter(), server_cpu_seconds()
    # Every worker has drained (or one failed: its exit code says so below).
    while finished.value < args.workers and not any(p.exitcode for p in procs):
        time.sleep(0.005)
    elapsed, server = time.perf_counter() - started, server_cpu_seconds() - server
    measured.set()
    for p in procs:
        p.join()
    if failed := [p.exitcode for p in procs if p.exitcode]:
        raise SystemExit(f"a PgQueuer worker failed (exit codes {failed})")
    if problems := asyncio.run(check(args, total)):
        raise SystemExit("PgQueuer's drain did not do the work: " + "; ".join(problems))
    # CPU a job: the server's processes and the workers', over the drain (what bench/engine.py's drain reports).
    print(json.dumps({"work": args.work, "jobs": total, "seconds": elapsed, "rate": total / elapsed,
                      "server_cpu_us": server * 1e6 / total, "workers_cpu_us": sum(cpu) * 1e6 / total}),
          flush=True)  # fmt: skip


def server_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this machine's live ``postgres`` processes, from /proc
    (bench/_common.py's processes_cpu_seconds: this script imports no project code)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
            fields = text[text.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
