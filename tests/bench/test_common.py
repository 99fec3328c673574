"""bench/_common.py: what the benchmarks share."""

import time
from pathlib import Path

from bench._common import processes_cpu_seconds


def test_the_cpu_of_processes_by_name_counts_a_processs_work():
    comm = Path("/proc/self/comm")
    name = comm.read_text().strip()
    comm.write_text("bench-cpu-test")  # a name no other process has: the total is this process's alone
    try:
        before = processes_cpu_seconds("bench-cpu-test")
        spent = time.process_time()
        while time.process_time() - spent < 0.3:  # busy: CPU time, not sleep
            pass
        assert 0.25 <= processes_cpu_seconds("bench-cpu-test") - before < 5
    finally:
        comm.write_text(name)
    assert processes_cpu_seconds("bench-cpu-test") == 0
