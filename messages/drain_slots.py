"""Which drains run in this worker cluster: pids in memory the cluster's processes share.

Made by the cluster's sentinel before it forks its workers (messages/cluster.py), None anywhere
else. A drain registers its process here while it runs (messages/tasks.py); the cluster's own
due check starts no drain while one runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

slots = None  # a multiprocessing Array of pids (0: free), once installed


def slots_install(array) -> None:
    """Called by the cluster's sentinel, before its workers fork: they inherit ``array``."""
    global slots
    slots = array


def drains_running(pids: set[int]) -> bool:
    """Whether one of the processes ``pids`` (the cluster's live workers) is running a drain."""
    current = slots
    return current is not None and any(pid in pids for pid in current[:])


@contextmanager
def drain_registered() -> Iterator[None]:
    """This process runs a drain for the duration of the block (a no-op outside a cluster)."""
    current, pid, slot = slots, os.getpid(), None
    if current is not None:
        with current.get_lock():
            # A free slot, or one a killed worker left behind (its pid is gone).
            slot = next((i for i, held in enumerate(current) if held in (0, pid) or not _alive(held)), None)
            if slot is not None:
                current[slot] = pid
    try:
        yield
    finally:
        if slot is not None:
            with current.get_lock():
                current[slot] = 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    return True
