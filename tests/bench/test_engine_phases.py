"""bench/engine_phases.py: one worker drains a fill and says where each message's time went."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_phases_of_a_drain_are_printed_and_add_up(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SYNC_VAR_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "bench/engine_phases.py", "--sqlite", "--messages", "300", "--terminals", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    assert "one worker, 300 messages, batch 100, SQLite" in out
    cpu = {name.strip(): float(v) for name, v in re.findall(r"^ {2,}(\S.*?)\s+CPU\s+([\d.]+) µs/msg", out, re.M)}
    assert set(cpu) == {"the whole drain", "claim", "apply a batch", "_prepare", "_apply", "_finish",
                        "the tail (deltas, counters, COMMIT)"}  # fmt: skip
    assert all(v > 0 for v in cpu.values()), cpu
    # The steps are parts of applying a batch, and the claim and the batches are parts of the drain.
    assert cpu["_prepare"] + cpu["_apply"] + cpu["_finish"] < cpu["apply a batch"]
    assert cpu["claim"] + cpu["apply a batch"] <= cpu["the whole drain"] * 1.01


def test_memory_mode_prints_the_drains_rss_and_python_objects_at_each_tenth(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SYNC_VAR_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "bench/engine_phases.py", "--memory", "--sqlite", "--messages", "300", "--terminals", "3",
         "--batch", "10"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    marks = re.findall(r"^\s+([\d,]+) drained: RSS\s+([\d.]+) MB, Python objects\s+([\d.]+) MB", out, re.M)
    assert [int(n.replace(",", "")) for n, _, _ in marks] == list(range(30, 301, 30))
    assert all(float(rss) > 0 for _, rss, _ in marks)
