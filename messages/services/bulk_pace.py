"""Throttling a background bulk job: how many messages a chunk takes and how long it waits after."""

from __future__ import annotations

import time

# The longest a throttled job's task sleeps at once: a chunk is at most one second of its rate.
PACE_NAP_MAX = 1.0


class Pace:
    """Keeps one task's chunks at or under ``rate`` messages per second (None: no pacing).

    Why short sleeps in the task and not a delayed re-enqueue: django-q2 has no delayed task,
    and its scheduler reads the Schedule table only every 30 s (its guard loop), so a chunk
    scheduled "in one second" would run up to 30 s later and a rate of 20/s would crawl at
    under 1/s. A chunk is at most one second of the rate, so the task never sleeps longer than
    PACE_NAP_MAX at once, and it runs for THROTTLED_SLICE_SECONDS (bulk.py) at most before it hands the
    job over to a new task at the back of the broker's queue: a drain waiting for a worker
    gets one between slices, and a slot is never held idle for minutes.

    Each chunk waits out its share of time *after* it is applied (its second ends before the
    next begins, and before the job is done), so the job's rate from start to end is at most
    ``rate``, hand-overs and pauses only slowing it down.
    """

    def __init__(self, rate: int | None, *, clock=time.monotonic, sleep=time.sleep):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.start = clock()
        self.sent = 0

    def chunk(self, size: int) -> int:
        return min(size, self.rate) if self.rate else size

    def wait(self, count: int) -> None:
        """``count`` messages went: sleep until they have had their time."""
        if not self.rate:
            return
        self.sent += count
        delay = self.start + self.sent / self.rate - self.clock()
        if delay > 0:
            self.sleep(min(delay, PACE_NAP_MAX))
