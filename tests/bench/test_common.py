"""bench/_common.py: what the benchmarks share."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._common import checkpoint, pids_cpu_seconds, processes_cpu_seconds
from tests.processes import postgres_url


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


def test_the_cpu_of_processes_by_pid_counts_each_ones_work_and_a_gone_one_as_none():
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", busy])
    try:
        deadline = time.monotonic() + 10
        while pids_cpu_seconds([child.pid])[child.pid] < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        spent = pids_cpu_seconds([child.pid, os.getpid()])
        assert 0.25 <= spent[child.pid] < 5 and spent[os.getpid()] > 0
    finally:
        child.kill()
        child.wait()
    assert pids_cpu_seconds([child.pid]) == {child.pid: 0.0}


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_checkpoint_before_a_timed_section_is_a_new_checkpoint_on_the_server():
    import psycopg

    url = postgres_url("postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        before = conn.execute("SELECT checkpoint_lsn FROM pg_control_checkpoint()").fetchone()[0]
        conn.execute("SELECT pg_switch_wal()")  # WAL since the last checkpoint: the next one is not a no-op
        checkpoint(url)
        after = conn.execute("SELECT checkpoint_lsn FROM pg_control_checkpoint()").fetchone()[0]
    assert after != before
