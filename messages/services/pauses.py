"""Pauses: the workers stop claiming one message type, entity type or terminal, and start again.

A pause is a state of the queue, one QueuePause row however many messages wait; pausing and
resuming are audited. The claim (services/claim.py) reads the set of pauses at most once a
second per worker process (``pauses_current``), so a pause takes effect within about a second;
a batch already claimed when the pause is set finishes.

Parking. The claim walks the due index in ``next_attempt_at`` order. A paused message it meets
there is *parked*: its ``next_attempt_at`` is moved PARK_OFFSET (about 1,000 years) later, in the
claim's own statement, so it leaves the due range and no later claim walks it again. Without
that, a paused backlog at the head of the queue is walked on every claim (bench/pauses.py: past
100,000 paused due messages the claim's walk took 70 times as long on PostgreSQL, 178 times on
SQLite) and every "is anything due?" look (the cluster's, the sweep's) keeps answering yes.
Parking changes no state (the message stays Received or Failed, visible, not dead-lettered) and
writes each paused message at most once, when it falls due, never at the moment of the pause.
Resuming deletes the pause, then ``message_unpark_all`` (a task) moves the parked messages back
by the same offset in chunks, oldest first, so the workers take them in their original order;
the minute's sweep makes good a lost task (``message_unpark_stray``).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django_q.tasks import async_task

from messages.models import ENTITY_RE, PARK_OFFSET, PENDING_STATES, Message, QueuePause
from messages.services.console import ActionRefused
from messages.services.wakeup import wake_workers
from syncadmin.lib.clock import db_now
from syncadmin.services import audit_record
from terminals.models import Terminal

log = logging.getLogger("messages.services")

PAUSE_CACHE_SECONDS = 1.0  # how stale a worker's idea of the pauses may be: the pause takes effect within it
UNPARK_CHUNK = 5_000
UNPARK_TASK = "messages.tasks.queue_unpark"
MESSAGE_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}\.[a-z][a-z0-9_]{0,22}$")  # "<entity>.<op>", 64 at most


class PauseExists(ActionRefused):
    """What is asked to be paused is paused already (the message says by whom and since when)."""


@dataclass(frozen=True)
class PauseSet:
    """What the claim may not take: the keys of every active pause (terminals by id)."""

    message_types: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ()
    terminal_ids: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.message_types or self.entity_types or self.terminal_ids)

    def holds(self, message: Message) -> bool:
        """Whether ``message`` (message_type, entity_type and terminal_id loaded) is paused."""
        return (
            message.message_type in self.message_types
            or message.entity_type in self.entity_types
            or message.terminal_id in self.terminal_ids
        )

    def q(self) -> Q:
        """The paused messages as a filter (an empty set matches nothing)."""
        return (
            Q(message_type__in=self.message_types)
            | Q(entity_type__in=self.entity_types)
            | Q(terminal_id__in=self.terminal_ids)
        )


_cache: tuple[float, PauseSet] | None = None


def pauses_load() -> PauseSet:
    """The active pauses, read now (two tiny queries; none when nothing is paused)."""
    keys: dict[str, list[str]] = {scope: [] for scope in QueuePause.Scope.values}
    for scope, value in QueuePause.objects.values_list("scope", "value"):
        keys[scope].append(value)
    codes = keys[QueuePause.Scope.TERMINAL]
    terminal_ids = tuple(Terminal.objects.filter(code__in=codes).values_list("id", flat=True)) if codes else ()
    return PauseSet(
        message_types=tuple(keys[QueuePause.Scope.MESSAGE_TYPE]),
        entity_types=tuple(keys[QueuePause.Scope.ENTITY_TYPE]),
        terminal_ids=terminal_ids,
    )


def pauses_current() -> PauseSet:
    """The active pauses as this process last read them, at most PAUSE_CACHE_SECONDS ago (the claim's read)."""
    global _cache
    now = time.monotonic()
    if _cache is None or _cache[0] <= now:
        _cache = (now + PAUSE_CACHE_SECONDS, pauses_load())
    return _cache[1]


def pauses_forget() -> None:
    """Make this process read the pauses again on its next claim (after it changed them itself)."""
    global _cache
    _cache = None


def _validate(scope: str, value: str) -> str:
    value = (value or "").strip()
    if scope not in QueuePause.Scope.values:
        raise ActionRefused(f"unknown pause scope {scope!r}", field="scope")
    if scope == QueuePause.Scope.MESSAGE_TYPE and not MESSAGE_TYPE_RE.fullmatch(value):
        raise ActionRefused(f"{value!r} is not a message type (<entity>.<op>, e.g. price.upsert)", field="value")
    if scope == QueuePause.Scope.ENTITY_TYPE and not ENTITY_RE.fullmatch(value):
        raise ActionRefused(f"{value!r} is not an entity type (e.g. price)", field="value")
    if scope == QueuePause.Scope.TERMINAL and not Terminal.objects.filter(code=value).exists():
        raise ActionRefused(f"there is no terminal {value!r}", field="value")
    return value


def queue_pause_create(*, scope: str, value: str, reason: str, actor: str) -> QueuePause:
    """Pause one message type, entity type or terminal: one row and its audit entry, nothing per message."""
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("a reason is required to pause processing", field="reason")
    value = _validate(scope, value)
    try:
        with transaction.atomic():
            pause = QueuePause.objects.create(
                scope=scope, value=value, reason=reason, paused_by=actor[:150], paused_at=db_now()
            )
            audit_record(
                actor=actor, action="queue.pause", object_type=f"queue_pause:{scope}", object_id=value, reason=reason
            )
    except IntegrityError:
        held = QueuePause.objects.filter(scope=scope, value=value).first()
        since = f" by {held.paused_by} since {held.paused_at:%Y-%m-%d %H:%M:%S}" if held else ""
        raise PauseExists(f"{scope.replace('_', ' ')} {value} is paused already{since}", field="value") from None
    pauses_forget()
    transaction.on_commit(pauses_forget)
    return pause


def queue_pause_resume(*, pause_id: int, actor: str, reason: str = "") -> QueuePause:
    """Resume: delete the pause, audit it (with who paused it, when and why), then unpark its messages.

    The parked messages come back in a task (``UNPARK_TASK``), oldest first, in chunks.
    """
    with transaction.atomic():
        pause = QueuePause.objects.select_for_update().filter(pk=pause_id).first()
        if pause is None:
            raise ActionRefused("this pause was resumed already")
        now = db_now()
        pause.delete()
        audit_record(
            actor=actor,
            action="queue.resume",
            object_type=f"queue_pause:{pause.scope}",
            object_id=pause.value,
            reason=(reason or "").strip() or "resumed from the console",
            detail={
                "paused_by": pause.paused_by,
                "paused_at": pause.paused_at.isoformat(),
                "pause_reason": pause.reason,
                "paused_seconds": round((now - pause.paused_at).total_seconds(), 3),
            },
        )
        transaction.on_commit(_unpark_later)
    pauses_forget()
    return pause


def _unpark_later() -> None:
    pauses_forget()
    try:
        async_task(UNPARK_TASK, group="pauses", q_options={"task_name": "queue-unpark"})
    except Exception:  # the broker being down must not fail a resume that has committed
        log.warning("could not enqueue the unpark task; the minute's sweep brings the messages back", exc_info=True)


def message_unpark(*, limit: int = UNPARK_CHUNK) -> int:
    """Bring back up to ``limit`` parked messages that no active pause holds, oldest first; how many.

    One chunk, one transaction: the workers take each chunk while the next is prepared.
    """
    pauses = pauses_load()
    with transaction.atomic():
        threshold = db_now() + PARK_OFFSET / 2
        parked = Message.objects.filter(state__in=PENDING_STATES, next_attempt_at__gt=threshold)
        if pauses:
            parked = parked.exclude(pauses.q())
        ids = list(parked.order_by("next_attempt_at").values_list("id", flat=True)[:limit])
        if not ids:
            return 0
        changed = Message.objects.filter(pk__in=ids, state__in=PENDING_STATES, next_attempt_at__gt=threshold).update(
            next_attempt_at=F("next_attempt_at") - PARK_OFFSET
        )
        transaction.on_commit(wake_workers)
    return changed


def message_unpark_all(*, settle_seconds: float = 2 * PAUSE_CACHE_SECONDS) -> int:
    """Unpark every message no pause holds, chunk by chunk; how many.

    Once more after ``settle_seconds``: a worker whose idea of the pauses was up to
    PAUSE_CACHE_SECONDS old may have parked a message of the resumed pause meanwhile.
    """
    total = 0
    for rest in (0.0, settle_seconds):
        time.sleep(rest)
        while changed := message_unpark():
            total += changed
    return total


def message_unpark_stray() -> int:
    """The minute's sweep's safety net: when nothing is paused, every parked message was left by a lost
    unpark task (its broker was down, its worker killed); bring them back. One indexed probe otherwise."""
    if QueuePause.objects.exists():
        return 0
    threshold = db_now() + PARK_OFFSET / 2
    if not Message.objects.filter(state__in=PENDING_STATES, next_attempt_at__gt=threshold).exists():
        return 0
    total = 0
    while changed := message_unpark():
        total += changed
    log.warning("brought back %s parked message(s) no pause held (a lost unpark task)", total)
    return total


def messages_set_aside(rows: list[Message], *, pauses: PauseSet, limit: int) -> tuple[list[Message], int]:
    """The ORM claims' parking (SQLite, Oracle): park the paused rows among ``rows`` (locked, in due
    order), keep the first ``limit`` others; returns (kept, how many were parked)."""
    if not pauses:
        return rows[:limit], 0
    paused = [m.pk for m in rows if pauses.holds(m)]
    if paused:
        Message.objects.filter(pk__in=paused).update(next_attempt_at=F("next_attempt_at") + PARK_OFFSET)
    return [m for m in rows if not pauses.holds(m)][:limit], len(paused)
