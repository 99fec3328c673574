"""Waking the workers: drain tasks enqueued by their dotted path, and the minute's sweep.

The message table, not django-q2's task bookkeeping, is the source of truth: a drain task only
claims whatever is due, so losing, duplicating or redelivering one is harmless. A service
enqueues a task by its dotted path (``DRAIN_TASK``): the core never imports a tasks module.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django_q.brokers import get_broker
from django_q.tasks import async_task

from messages.selectors import message_due_count
from terminals.services import terminal_nonces_purge

log = logging.getLogger("messages.services")
sweep_log = logging.getLogger("messages.tasks")  # the sweep's lines keep the name they always had

DRAIN_TASK = "messages.tasks.drain"

_broker = None


def _drain_broker():
    """This process's broker, made once.

    Without one, django-q2 builds a broker per async_task call: for Redis a new client, pool
    and TCP connection on every ingest call that wakes the workers. redis-py's pool is
    thread-safe, notices a fork (django-q2's workers) and reconnects after a Redis restart.
    """
    global _broker
    if _broker is None:
        _broker = get_broker()
    return _broker


def enqueue_drain(count: int = 1) -> None:
    broker = _drain_broker()
    for _ in range(count):
        async_task(DRAIN_TASK, group="drain", q_options={"task_name": "drain", "broker": broker})


def wake_workers() -> None:
    """Ask the worker pool to drain; called after a commit that made work due."""
    try:
        enqueue_drain()
    except Exception:  # the broker being down must not fail an ingest that has committed
        log.warning("could not wake the workers; the sweep schedule will pick the work up", exc_info=True)


def sweep() -> int:
    """Wake enough drains for due work and expired leases; returns how many messages are due.

    Then it forgets the WS-Security nonces that can no longer be replayed (a few minutes'
    worth, by an index): the table stays as small as the replay window.
    """
    due = message_due_count(limit=settings.SYNC_WORKERS * settings.SYNC_CLAIM_BATCH)
    if due:
        wanted = min(settings.SYNC_WORKERS, -(-due // settings.SYNC_CLAIM_BATCH))
        enqueue_drain(wanted)
        sweep_log.info("sweep found %s due message(s); woke %s drain(s)", due, wanted)
    terminal_nonces_purge()
    return due
