"""Where a batch's time goes: one worker in this process, each phase's CPU and wall time per message.

    .venv/bin/python bench/engine_phases.py [--messages 20000] [--batch 100] [--sqlite]

bench/engine.py's fill (its own database, the same messages), then one worker drains them in this
process with the engine's own calls (``message_claim`` then ``message_process_claimed``, as a
drain does), with nothing else running against the database. For the claim and for each step of
applying a batch (decoding, the handler's apply, the completion, and the rest: the batch's tail of
metric deltas, counters and COMMIT) it prints this process's CPU time (``time.process_time``) and
the wall time per message. Wall minus CPU is, to a close approximation, the time spent waiting on
the database server: its share of the work per message, apart from Python's. The same-run
reference is the whole drain's own figures on the first line.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import fill, parse_args, prepare_env  # noqa: E402

STEPS = ("_prepare", "_apply", "_finish")  # messages/services/processing.py


def main() -> None:
    sys.argv += [] if "--database" in sys.argv else ["--database", "syncadmin_phases"]
    args = parse_args()
    args.messages = args.messages if "--messages" in sys.argv else 20_000
    prepare_env(args)
    fill(args)
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
    n, c0, w0 = 0, time.process_time(), time.perf_counter()
    while batch := claim(worker="phases", limit=args.batch):
        process(messages=batch, worker="phases")
        n += len(batch)
    c, w = time.process_time() - c0, time.perf_counter() - w0
    cpu["  the tail (deltas, counters, COMMIT)"] = cpu["apply a batch"] - sum(cpu[s] for s in STEPS)
    wall["  the tail (deltas, counters, COMMIT)"] = wall["apply a batch"] - sum(wall[s] for s in STEPS)
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"one worker, {n:,} messages, batch {args.batch}, {backend}: {n / w:,.0f} msg/s")
    print(f"  {'the whole drain':38s} CPU {1e6 * c / n:6.1f} µs/msg   wall {1e6 * w / n:6.1f} µs/msg")
    for name in ("claim", "apply a batch", *(f"  {s}" for s in STEPS), "  the tail (deltas, counters, COMMIT)"):
        key = name.strip() if name.strip() in STEPS else name
        print(f"  {name:38s} CPU {1e6 * cpu[key] / n:6.1f} µs/msg   wall {1e6 * wall[key] / n:6.1f} µs/msg")


if __name__ == "__main__":
    main()
