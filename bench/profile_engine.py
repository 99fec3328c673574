"""Profile the engine's workers during a drain with py-spy; print the top costs.

    .venv/bin/python bench/profile_engine.py [--batch 10] [--messages 60000] [--sqlite]

bench/engine.py's fill and cluster (its own database, the same messages), then, once the drain
runs, ``py-spy record`` (installed into the peers' virtualenv from bench/peers/requirements.txt,
never into the project's) samples each of the busiest ``--workers`` processes of the cluster for
``--seconds``, without pausing them (``--nonblocking``: sampling slows the workers a little, so
the drain's own rate is not a figure here; bench/engine.py's is). Prints the ten costs with the
most samples in the workers' stacks, counted once per stack (a function and what it calls:
"inclusive"), among the project's functions and the libraries' entry points it calls, and the
ten with the most samples of their own ("self"). ``--raw DIR`` keeps py-spy's collapsed stacks
(speedscope and flame graph tools read them).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import descendants  # noqa: E402
from bench.engine import fill, prepare_env  # noqa: E402
from bench.peers.environment import peers_python  # noqa: E402

# A frame is the project's when its file is under one of these folders (py-spy names files relative
# to the sys.path entry they were imported from: the repository's root for the project's).
PROJECT = ("messages/", "syncadmin/", "terminals/", "reconciliation/")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=60_000)
    p.add_argument("--terminals", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--ingest-batch", type=int, default=100)
    p.add_argument("--seconds", type=int, default=5, help="how long py-spy samples each worker")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--sqlite", action="store_true")
    p.add_argument("--fleet", action="store_true")
    p.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks in this folder")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14"))
    p.add_argument("--database", default="syncadmin_profile", help="its own database (dropped and created)")
    return p.parse_args()


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def busiest(pids: list[int], n: int) -> list[int]:
    """The ``n`` processes that used the most CPU over half a second: the cluster's workers."""
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(0.5)
    return sorted(pids, key=lambda pid: cpu_ticks(pid) - before[pid], reverse=True)[:n]


def profile(args, env, out: Path) -> list[Path]:
    spy = peers_python().parent / "py-spy"
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(3)
        # Enqueued from this process, as bench/engine.py does (fill() set Django up here): a
        # `manage.py sync_wake` process would share the cores with the drain it starts.
        from messages.services.wakeup import enqueue_drain

        enqueue_drain(args.workers)
        time.sleep(0.5)
        workers = busiest(descendants(cluster.pid), args.workers)
        files = [out / f"worker-{pid}.txt" for pid in workers]
        spies = [subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(args.seconds), "--rate",
                                   str(args.rate), "--format", "raw", "--nonblocking", "--output", str(f)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for pid, f in zip(workers, files, strict=True)]  # fmt: skip
        for s in spies:
            _, err = s.communicate()
            if s.returncode:
                raise SystemExit(f"py-spy failed: {err[-2000:]}")
        return files
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)


def frame_name(frame: str) -> str:
    """``function (path:line)`` -> ``function (path relative to the repository or site-packages)``."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    if path.startswith(f"{ROOT}/"):
        path = path[len(f"{ROOT}/") :]
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    return f"{name} ({path})"


def costs(files: list[Path]) -> tuple[int, Counter, Counter]:
    """Samples in all; per frame, samples of stacks it is in (once per stack) and samples it is the leaf of.

    Inclusive costs are kept for the project's frames and for the first frame outside the project
    that a project frame calls (the library entry point: psycopg's execute, logging's handle...)."""
    total, inclusive, own = 0, Counter(), Counter()
    for f in files:
        for line in f.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            own[frame_name(frames[-1])] += n
            seen = set()
            for i, frame in enumerate(frames):
                path = frame.partition(" (")[2]
                ours = path.startswith(PROJECT)
                entry = not ours and i > 0 and frames[i - 1].partition(" (")[2].startswith(PROJECT)
                if ours or entry:
                    seen.add(frame_name(frame))
            for name in seen:
                inclusive[name] += n
    return total, inclusive, own


def top_inclusive(inclusive: Counter, total: int, n: int = 10) -> list[tuple[str, int]]:
    """The ``n`` largest inclusive costs, without the frames every sample is in (the drain loop)
    nor a frame with exactly the samples of one already listed (a wrapper and what it wraps)."""
    top: list[tuple[str, int]] = []
    for name, samples in inclusive.most_common():
        wrapper = name.startswith("per_vendor.<locals>")  # syncadmin/lib/sql.py's dispatch to a vendor's form
        if samples < 0.9 * total and not wrapper and samples not in {s for _, s in top}:
            top.append((name, samples))
        if len(top) == n:
            break
    return top


def main():
    args = parse_args()
    env = prepare_env(args)
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"Profile of {args.workers} engine workers during a drain: {args.messages:,} messages, batch {args.batch}, "
          f"{backend}; py-spy {args.rate}/s for {args.seconds} s per worker", flush=True)  # fmt: skip
    fill(args)
    out = args.raw or Path(tempfile.mkdtemp(prefix="syncadmin-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    total, inclusive, own = costs(profile(args, env, out))
    if not total:
        raise SystemExit("py-spy took no sample: did the drain end before it started? (--messages)")
    print(f"  {total:,} samples of active worker threads; the ten largest costs, inclusive (a function and "
          "what it calls):")  # fmt: skip
    for name, n in top_inclusive(inclusive, total):
        print(f"    {n / total:6.1%}  {name}")
    print("  the ten largest costs of their own (leaf frames):")
    for name, n in own.most_common(10):
        print(f"    {n / total:6.1%}  {name}")
    print(f"  collapsed stacks: {out}")


if __name__ == "__main__":
    main()
