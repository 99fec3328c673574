"""Where a batch's time goes: one worker in this process, each phase's CPU and wall time per message.

    .venv/bin/python bench/engine_phases.py [--messages 20000] [--batch 100] [--sqlite]
    .venv/bin/python bench/engine_phases.py --memory --messages 1000000

bench/engine.py's fill (its own database, the same messages), then one worker drains them in this
process with the engine's own calls (``message_claim`` then ``message_process_claimed``, as a
drain does), with nothing else running against the database. For the claim and for each step of
applying a batch (decoding, the handler's apply, the completion, and the rest: the batch's tail of
metric deltas, counters and COMMIT) it prints this process's CPU time (``time.process_time``) and
the wall time per message. Wall minus CPU is, to a close approximation, the time spent waiting on
the database server: its share of the work per message, apart from Python's. On PostgreSQL the last
line is the server's own CPU per message: every ``postgres`` process's, read from /proc (nothing else
runs against it meanwhile). The same-run reference is the whole drain's own figures on the first line.

``--memory``: the drain runs in a fresh process once the fill is done (the fill's own memory is
not counted), and prints its RSS and the Python objects it holds (tracemalloc's traced total,
after a collection) at every tenth of the messages: flat figures mean the engine keeps nothing
from one batch to the next.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import processes_cpu_seconds, rss_mb  # noqa: E402
from bench.engine import fill, parse_args, prepare_env  # noqa: E402

STEPS = ("_prepare", "_apply", "_finish")  # messages/services/processing.py


def main() -> None:
    memory = "--memory" in sys.argv
    sys.argv = [a for a in sys.argv if a != "--memory"]
    sys.argv += [] if "--database" in sys.argv else ["--database", "syncadmin_phases"]
    args = parse_args()
    args.messages = args.messages if "--messages" in sys.argv else 20_000
    if os.environ.get("ENGINE_PHASES_DRAIN"):  # the fresh process of --memory
        return memory_drain(args)
    prepare_env(args)
    fill(args)
    if memory:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "ENGINE_PHASES_DRAIN": "1"})
    from messages import services
    from messages.services import processing

    cpu, wall = Counter(), Counter()

    def timed(name, fn):
        def run(*a, **kw):
            c, w = time.process_time(), time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                cpu[name] += time.process_time() - c
                wall[name] += time.perf_counter() - w

        return run

    for name in STEPS:
        setattr(processing, name, timed(name, getattr(processing, name)))
    claim = timed("claim", services.message_claim)
    process = timed("apply a batch", services.message_process_claimed)
    server0 = None if args.sqlite else processes_cpu_seconds("postgres")
    n, c0, w0 = 0, time.process_time(), time.perf_counter()
    while batch := claim(worker="phases", limit=args.batch):
        process(messages=batch, worker="phases")
        n += len(batch)
    c, w = time.process_time() - c0, time.perf_counter() - w0
    server = None if server0 is None else processes_cpu_seconds("postgres") - server0
    cpu["  the tail (deltas, counters, COMMIT)"] = cpu["apply a batch"] - sum(cpu[s] for s in STEPS)
    wall["  the tail (deltas, counters, COMMIT)"] = wall["apply a batch"] - sum(wall[s] for s in STEPS)
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"one worker, {n:,} messages, batch {args.batch}, {backend}: {n / w:,.0f} msg/s")
    print(f"  {'the whole drain':38s} CPU {1e6 * c / n:6.1f} µs/msg   wall {1e6 * w / n:6.1f} µs/msg")
    for name in ("claim", "apply a batch", *(f"  {s}" for s in STEPS), "  the tail (deltas, counters, COMMIT)"):
        key = name.strip() if name.strip() in STEPS else name
        print(f"  {name:38s} CPU {1e6 * cpu[key] / n:6.1f} µs/msg   wall {1e6 * wall[key] / n:6.1f} µs/msg")
    if server is not None:
        # Nothing else runs against the server meanwhile: its processes' CPU is this drain's.
        print(f"  {'PostgreSQL (all its processes)':38s} CPU {1e6 * server / n:6.1f} µs/msg")


def memory_drain(args) -> None:
    import gc
    import tracemalloc

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")
    django.setup()
    from messages import services

    tracemalloc.start()
    step, n, mark = max(args.messages // 10, 1), 0, 0
    print(f"one worker in a fresh process, {args.messages:,} messages, batch {args.batch}")
    while batch := services.message_claim(worker="phases", limit=args.batch):
        services.message_process_claimed(messages=batch, worker="phases")
        n += len(batch)
        if n >= mark + step or n == args.messages:
            mark = n
            gc.collect()
            print(f"  {n:>10,} drained: RSS {rss_mb(os.getpid()):6.1f} MB, Python objects {tracemalloc.get_traced_memory()[0] / 1e6:5.2f} MB",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
