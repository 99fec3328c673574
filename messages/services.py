"""Writes on the message queue: ingest, the one transition function, claim, apply, retry, discard.

Every state change goes through ``message_transition``: a compare-and-set UPDATE on the
expected current state plus one MessageEvent row per message, in one transaction. If any
message is no longer in the expected state the whole change rolls back, so two actors can
never both win and a transition never half-happens.
"""

from __future__ import annotations

import json
import logging
import random
import re
import traceback as tb
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.models import F
from django.utils import timezone

from messages.handlers import Item, PermanentError, registry
from messages.models import TRANSITIONS, DeadLetter, Message, MessageEvent, MessageState
from syncadmin.routers import central_alias

log = logging.getLogger(__name__)

S = MessageState
RETRYABLE_STATES = (S.FAILED, S.DEAD_LETTERED)
DISCARDABLE_STATES = (S.RECEIVED, S.FAILED, S.DEAD_LETTERED)


NOOP_REASON = "no-op: the central store already holds this or a newer sequence"


class IllegalTransition(Exception):
    """A state change the lifecycle does not allow, or one whose expected state was stale."""


# --- clock -----------------------------------------------------------------------------------


def db_now(using: str = "default") -> datetime:
    """The database's clock: leases and backoff must not depend on a worker's own clock."""
    conn = connections[using]
    if conn.vendor == "sqlite":
        # SQLite is a file on this machine: its clock is this machine's clock.
        from django.utils import timezone

        return timezone.now()
    sql = {"postgresql": "SELECT clock_timestamp()", "oracle": "SELECT SYSTIMESTAMP FROM DUAL"}.get(
        conn.vendor, "SELECT CURRENT_TIMESTAMP"
    )
    with conn.cursor() as cursor:
        cursor.execute(sql)
        value = cursor.fetchone()[0]
    if value.tzinfo is None:
        from django.utils import timezone

        value = timezone.make_aware(value, timezone.utc)
    return value


# --- the one transition function -------------------------------------------------------------


@dataclass
class EventDetail:
    reason: str = ""
    error_class: str = ""
    traceback: str = ""


def message_transition(
    *,
    message_ids: Sequence[int],
    from_state: str,
    to_state: str,
    actor: str,
    reason: str = "",
    error_class: str = "",
    traceback: str = "",
    fields: dict | None = None,
    only_if: dict | None = None,
    now: datetime | None = None,
) -> int:
    """Move every message in ``message_ids`` from ``from_state`` to ``to_state``, or none.

    ``fields`` are extra column updates (values or F expressions); ``only_if`` adds
    conditions to the compare-and-set (e.g. the lease owner). Raises IllegalTransition if
    the move is not in the lifecycle or if any message was not in ``from_state``.
    """
    ids = list(dict.fromkeys(message_ids))
    if to_state not in TRANSITIONS.get(from_state, ()):
        raise IllegalTransition(f"{from_state} -> {to_state} is not a legal transition")
    if not ids:
        return 0
    with transaction.atomic():
        now = now or db_now()
        changed = 0
        for chunk in _chunks(ids, 900):  # Oracle allows at most 1,000 items in an IN list
            qs = Message.objects.filter(pk__in=chunk, state=from_state, **(only_if or {}))
            changed += qs.update(state=to_state, updated_at=now, **(fields or {}))
        if changed != len(ids):
            raise IllegalTransition(
                f"{len(ids) - changed} of {len(ids)} message(s) were no longer {from_state}"
                + (f" with {only_if}" if only_if else "")
            )
        _events_insert(ids, from_state, to_state, now, actor, reason, error_class, traceback)
    return changed


def _events_insert(ids, from_state, to_state, now, actor, reason, error_class, traceback) -> None:
    """One INSERT ... SELECT per chunk: the event rows are built by the database, not the ORM.

    The attempt number is read from the message row just updated, so a claim's event carries
    the attempt it started.
    """
    conn = connections[Message.objects.db]
    at = conn.ops.adapt_datetimefield_value(now)
    event, message = MessageEvent._meta.db_table, Message._meta.db_table
    with conn.cursor() as cursor:
        for chunk in _chunks(ids, 900):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {event}"
                " (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)"
                f" SELECT id, %s, %s, %s, %s, %s, %s, %s, attempts FROM {message} WHERE id IN ({marks})",
                [from_state, to_state, at, actor[:150], reason, error_class[:200], traceback, *chunk],
            )


# --- ingest ------------------------------------------------------------------------------------


@dataclass
class Envelope:
    message_id: str | None
    message_type: str | None
    entity_key: str | None
    sequence: int | None
    created_at: datetime | None
    payload: str | None


@dataclass
class SubmitResult:
    message_id: str
    status: str  # Accepted | Duplicate | Rejected
    reason: str = ""


def _envelope_problem(env: Envelope) -> str:
    for name, value, limit in (
        ("MessageId", env.message_id, 64),
        ("MessageType", env.message_type, 64),
        ("EntityKey", env.entity_key, 128),
    ):
        if not value:
            return f"{name} is missing"
        if len(value) > limit:
            return f"{name} is longer than {limit} characters"
        if "\x00" in value:
            return f"{name} contains a NUL character"
    if env.sequence is None:
        return "Sequence is missing"
    if not -(2**63) <= env.sequence < 2**63:
        return "Sequence is out of range"
    if env.created_at is None:
        return "CreatedAt is missing"
    if env.payload and "\x00" in env.payload:
        return "Payload contains a NUL character"
    return ""


def message_ingest_batch(*, terminal, envelopes: Sequence[Envelope], trace_id: str = "") -> list[SubmitResult]:
    """Store a terminal's batch in one transaction and answer per message, in input order.

    Duplicates (already stored, or repeated within the batch) are found with one query and
    the new messages are written with one multi-row insert. Idempotent: submitting the same
    batch again answers Duplicate for each message and stores nothing new.
    """
    results: list[SubmitResult | None] = [None] * len(envelopes)
    first_index: dict[str, int] = {}
    for i, env in enumerate(envelopes):
        problem = _envelope_problem(env)
        if problem:
            results[i] = SubmitResult(env.message_id or "", "Rejected", problem)
        elif env.message_id in first_index:
            results[i] = SubmitResult(env.message_id, "Duplicate")
        else:
            first_index[env.message_id] = i
    trace_id = trace_id or uuid.uuid4().hex

    for attempt in range(3):
        try:
            with transaction.atomic():
                now = db_now()
                existing = set(
                    Message.objects.filter(terminal=terminal, message_id__in=list(first_index)).values_list(
                        "message_id", flat=True
                    )
                )
                new = [envelopes[i] for message_id, i in first_index.items() if message_id not in existing]
                if new:
                    _messages_insert(terminal, new, now, trace_id)
                    _received_events_insert(terminal, [e.message_id for e in new], now)
                    transaction.on_commit(wake_workers)
            break
        except IntegrityError:
            # A concurrent call stored one of these ids first; the next pass sees it as a
            # duplicate. Anything else that breaks the insert is re-raised unchanged.
            if attempt == 2:
                raise
    for message_id, i in first_index.items():
        results[i] = SubmitResult(message_id, "Duplicate" if message_id in existing else "Accepted")
    return results  # type: ignore[return-value]


_MESSAGE_COLUMNS = (
    "terminal_id",
    "message_id",
    "message_type",
    "entity_type",
    "entity_key",
    "sequence",
    "created_at",
    "payload",
    "state",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "last_error",
    "received_at",
    "updated_at",
    "trace_id",
)


def _messages_insert(terminal, envelopes: list[Envelope], now: datetime, trace_id: str) -> None:
    """One multi-row INSERT for the batch.

    Written as SQL rather than bulk_create: preparing model instances field by field cost
    half of a SubmitMessages call. Oracle has no multi-row VALUES: it takes the ORM path.
    """
    conn = connections[Message.objects.db]
    if conn.vendor not in ("postgresql", "sqlite"):
        Message.objects.bulk_create(
            [
                Message(terminal=terminal, **dict(zip(_MESSAGE_COLUMNS[1:], row[1:], strict=True)))
                for row in _message_rows(terminal, envelopes, now, trace_id, adapt=lambda v: v)
            ],
            batch_size=500,
        )
        return
    adapt = conn.ops.adapt_datetimefield_value
    rows = _message_rows(terminal, envelopes, now, trace_id, adapt=adapt)
    row_marks = "(" + ", ".join(["%s"] * len(_MESSAGE_COLUMNS)) + ")"
    with conn.cursor() as cursor:
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            cursor.execute(
                f"INSERT INTO {Message._meta.db_table} ({', '.join(_MESSAGE_COLUMNS)}) VALUES "
                + ", ".join([row_marks] * len(chunk)),
                [v for row in chunk for v in row],
            )


def _message_rows(terminal, envelopes, now, trace_id, *, adapt) -> list[tuple]:
    at = adapt(now)
    rows = []
    for env in envelopes:
        created = env.created_at
        if timezone.is_naive(created):
            created = timezone.make_aware(created, timezone.utc)
        rows.append(
            (
                terminal.pk,
                env.message_id,
                env.message_type,
                env.message_type.partition(".")[0][:40],
                env.entity_key,
                env.sequence,
                adapt(created),
                env.payload or "",
                S.RECEIVED,
                0,
                at,
                "",
                "",
                at,
                at,
                trace_id,
            )
        )
    return rows


def _received_events_insert(terminal, message_ids: list[str], now: datetime) -> None:
    """The 'received' lifecycle row of each new message, built by the database in one statement."""
    conn = connections[Message.objects.db]
    event, message = MessageEvent._meta.db_table, Message._meta.db_table
    with conn.cursor() as cursor:
        for chunk in _chunks(message_ids, 900):
            cursor.execute(
                f"INSERT INTO {event}"
                " (message_id, from_state, to_state, at, actor, reason, error_class, traceback, attempt)"
                f" SELECT id, '', %s, %s, %s, '', '', '', 0 FROM {message}"
                f" WHERE terminal_id = %s AND message_id IN ({', '.join(['%s'] * len(chunk))})",
                [S.RECEIVED, conn.ops.adapt_datetimefield_value(now), f"terminal:{terminal.code}"[:150], terminal.pk]
                + chunk,
            )


def wake_workers() -> None:
    """Ask the worker pool to drain; called after a commit that made work due."""
    from messages import tasks

    try:
        tasks.enqueue_drain()
    except Exception:  # the broker being down must not fail an ingest that has committed
        log.warning("could not wake the workers; the sweep schedule will pick the work up", exc_info=True)


# --- claim -------------------------------------------------------------------------------------


def _locked_rows(qs, limit: int) -> list:
    # of=("self",): lock only the message rows. Without it PostgreSQL also locks the joined
    # terminal row, and every other worker then skips all of that terminal's messages.
    qs = qs.select_for_update(skip_locked=True, of=("self",))
    if connections[qs.db].features.supports_select_for_update_with_limit:
        return list(qs[:limit])
    # Oracle refuses FOR UPDATE with FETCH FIRST; it locks rows as they are fetched, so
    # reading only `limit` rows from the cursor claims only those.
    return list(islice(qs.iterator(chunk_size=limit), limit))


# What applying needs; loading fewer columns (timestamps above all) keeps the claim cheap.
CLAIM_FIELDS = (
    "terminal__code",
    "message_id",
    "message_type",
    "entity_type",
    "entity_key",
    "sequence",
    "payload",
    "state",
    "attempts",
    "lease_owner",
    "trace_id",
)


def message_claim(*, worker: str, limit: int) -> list[Message]:
    """Claim up to ``limit`` due messages for ``worker`` with a lease; count the attempt now.

    The attempt is counted when the message is claimed, not when it fails: a message whose
    handler kills its worker still reaches DeadLettered after SYNC_MAX_ATTEMPTS claims.
    A message whose lease expired (its worker died) is taken alone, so a poison message
    cannot drag the rest of its batch to the dead-letter queue with it.
    """
    lease = timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    max_attempts = settings.SYNC_MAX_ATTEMPTS
    with transaction.atomic():
        now = db_now()
        expired = _locked_rows(
            Message.objects.filter(state=S.PROCESSING, lease_expires_at__lt=now).order_by("lease_expires_at"), 1
        )
        if expired:
            m = expired[0]
            if m.attempts >= max_attempts:
                _dead_letter(
                    m,
                    actor="sweeper",
                    reason=f"worker lost the message {m.attempts} times (lease expired); last owner {m.lease_owner}",
                    error_class="LeaseExpired",
                    now=now,
                )
                return []
            message_transition(
                message_ids=[m.pk],
                from_state=S.PROCESSING,
                to_state=S.PROCESSING,
                actor=worker,
                reason=f"lease of {m.lease_owner} expired; re-claimed",
                fields={"attempts": F("attempts") + 1, "lease_owner": worker, "lease_expires_at": now + lease},
                only_if={"lease_expires_at__lt": now},
                now=now,
            )
            m.attempts += 1
            m.lease_owner = worker
            return [m]

        rows = _locked_rows(
            Message.objects.filter(state__in=(S.RECEIVED, S.FAILED), next_attempt_at__lte=now)
            .select_related("terminal")
            .only(*CLAIM_FIELDS)
            .order_by("next_attempt_at"),
            limit,
        )
        by_state: dict[str, list[int]] = defaultdict(list)
        for m in rows:
            by_state[m.state].append(m.pk)
        for state, ids in by_state.items():
            message_transition(
                message_ids=ids,
                from_state=state,
                to_state=S.PROCESSING,
                actor=worker,
                fields={
                    "attempts": F("attempts") + 1,
                    "lease_owner": worker,
                    "lease_expires_at": now + lease,
                    "next_attempt_at": None,
                },
                now=now,
            )
        for m in rows:
            m.attempts += 1
            m.lease_owner = worker
            m.state = S.PROCESSING
        return rows


# --- apply -------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    processed: int = 0
    noop: int = 0
    failed: int = 0
    dead_lettered: int = 0


_NORMALISE = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+")


def failure_group_key(error_class: str, reason: str) -> str:
    """error class + message with ids and numbers blanked: one group per kind of failure."""
    return f"{error_class}: {_NORMALISE.sub('#', reason.splitlines()[0] if reason else '')}"[:255]


def _dead_letter(message: Message, *, actor: str, reason: str, error_class: str, traceback: str = "", now) -> None:
    message_transition(
        message_ids=[message.pk],
        from_state=message.state,
        to_state=S.DEAD_LETTERED,
        actor=actor,
        reason=reason,
        error_class=error_class,
        traceback=traceback,
        fields={"lease_owner": "", "lease_expires_at": None, "next_attempt_at": None, "last_error": reason},
        now=now,
    )
    DeadLetter.objects.update_or_create(
        message=message,
        defaults={
            "reason": reason,
            "error_class": error_class,
            "traceback": traceback,
            "group_key": failure_group_key(error_class, reason),
            "dead_lettered_at": now,
            "resolution": "",
            "resolved_by": "",
            "resolved_at": None,
            "note": "",
        },
    )
    message.state = S.DEAD_LETTERED


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, then 50-100% of that."""
    delay = min(settings.SYNC_BACKOFF_MAX_SECONDS, settings.SYNC_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return delay * random.uniform(0.5, 1.0)


def _is_infrastructure_error(exc: BaseException) -> bool:
    """Database unreachable or connection lost: not the message's fault, do not burn an attempt."""
    return isinstance(exc, OperationalError) and not _is_retryable_conflict(exc)


def _is_retryable_conflict(exc: BaseException) -> bool:
    sqlstate = getattr(getattr(exc, "__cause__", None), "sqlstate", None)
    return sqlstate in ("40P01", "40001")  # deadlock detected, serialization failure


def _prepare(messages: Sequence[Message]) -> tuple[list[Item], list[tuple[Message, PermanentError]]]:
    items, rejected = [], []
    for m in messages:
        handler = registry.resolve(m.message_type)
        if handler is None:
            rejected.append((m, PermanentError(f"no handler for message type {m.message_type!r}")))
            continue
        try:
            payload = json.loads(m.payload) if m.payload.strip() else None
        except ValueError as exc:
            rejected.append((m, PermanentError(f"payload is not valid JSON: {exc}")))
            continue
        entity, _, op = m.message_type.partition(".")
        items.append(Item(message=m, terminal_code=m.terminal.code, entity_type=entity, op=op, payload=payload))
    return items, rejected


def _apply(items: list[Item]) -> None:
    by_handler = defaultdict(list)
    for item in items:
        by_handler[registry.resolve(item.message.message_type)].append(item)
    for handler, group in by_handler.items():
        handler.apply_many(group)


def message_process_batch(*, messages: Sequence[Message], worker: str) -> BatchResult:
    """Apply a claimed batch: central writes and state changes commit together or not at all.

    Fast path: the whole batch in one savepoint. If anything in it fails, each message is
    applied again in a savepoint of its own so one bad message cannot fail the others.
    A lost lease (another worker re-claimed an expired message) rolls everything back.
    """
    for attempt in range(3):
        try:
            return _process_batch_once(messages, worker)
        except OperationalError as exc:
            if not _is_retryable_conflict(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _process_batch_once(messages: Sequence[Message], worker: str) -> BatchResult:
    result = BatchResult()
    items, rejected = _prepare(messages)
    failures: list[tuple[Item | Message, BaseException, str]] = []
    central = central_alias()
    with transaction.atomic(), transaction.atomic(using=central):
        ok: list[Item] = []
        try:
            with transaction.atomic(using=central):
                _apply(items)
            ok = items
        except Exception as exc:
            if _is_infrastructure_error(exc) or _is_retryable_conflict(exc):
                raise
            if len(items) == 1:
                failures.append((items[0], exc, tb.format_exc()))
                items = []
            else:
                log.info("batch of %s replayed one message at a time after %s: %s", len(items), type(exc).__name__, exc)
            for item in items:
                item.applied, item.note = False, ""
                try:
                    with transaction.atomic(using=central):
                        _apply([item])
                    ok.append(item)
                except Exception as exc:
                    if _is_infrastructure_error(exc) or _is_retryable_conflict(exc):
                        raise
                    failures.append((item, exc, tb.format_exc()))
        now = db_now()
        done_fields = {"processed_at": now, "lease_owner": "", "lease_expires_at": None, "last_error": ""}
        applied = [i.message.pk for i in ok if i.applied]
        noop = [i for i in ok if not i.applied]
        if applied:
            message_transition(
                message_ids=applied,
                from_state=S.PROCESSING,
                to_state=S.PROCESSED,
                actor=worker,
                reason="applied",
                fields=done_fields,
                only_if={"lease_owner": worker},
                now=now,
            )
        if noop:
            message_transition(
                message_ids=[i.message.pk for i in noop],
                from_state=S.PROCESSING,
                to_state=S.PROCESSED,
                actor=worker,
                reason=NOOP_REASON,
                fields=done_fields,
                only_if={"lease_owner": worker},
                now=now,
            )
        result.processed, result.noop = len(applied), len(noop)
        for m, exc in rejected:
            _dead_letter(m, actor=worker, reason=str(exc), error_class="PermanentError", now=now)
            result.dead_lettered += 1
        for item, exc, trace in failures:
            m = item.message
            error_class = type(exc).__name__
            reason = str(exc) or error_class
            if isinstance(exc, PermanentError) or m.attempts >= settings.SYNC_MAX_ATTEMPTS:
                if not isinstance(exc, PermanentError):
                    reason = f"gave up after {m.attempts} attempts: {reason}"
                _dead_letter(m, actor=worker, reason=reason, error_class=error_class, traceback=trace, now=now)
                result.dead_lettered += 1
            else:
                delay = backoff_seconds(m.attempts)
                message_transition(
                    message_ids=[m.pk],
                    from_state=S.PROCESSING,
                    to_state=S.FAILED,
                    actor=worker,
                    reason=f"{reason} (retry in {delay:.0f}s)",
                    error_class=error_class,
                    traceback=trace,
                    fields={
                        "lease_owner": "",
                        "lease_expires_at": None,
                        "last_error": reason,
                        "next_attempt_at": now + timedelta(seconds=delay),
                    },
                    only_if={"lease_owner": worker},
                    now=now,
                )
                result.failed += 1
    return result


# --- operator actions ------------------------------------------------------------------------


def _chunks(ids: Iterable[int], size: int = 1000):
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def message_retry(*, message_ids: Iterable[int], actor: str, reason: str = "") -> int:
    """Failed/DeadLettered -> Received with attempts reset; returns how many changed.

    Messages in any other state are left alone (a double-clicked retry changes nothing the
    second time). Each chunk is its own transaction so a large selection never holds long locks.
    """
    changed = 0
    for chunk in _chunks(message_ids):
        with transaction.atomic():
            rows = list(
                Message.objects.select_for_update()
                .filter(pk__in=chunk, state__in=RETRYABLE_STATES)
                .values_list("pk", "state")
            )
            # The clock is read once the row locks are held: a worker whose transaction we
            # waited for committed earlier, so its event must not look later than ours.
            now = db_now()
            by_state = defaultdict(list)
            for pk, state in rows:
                by_state[state].append(pk)
            for state, ids in by_state.items():
                changed += message_transition(
                    message_ids=ids,
                    from_state=state,
                    to_state=S.RECEIVED,
                    actor=actor,
                    reason=reason or "retry requested",
                    fields={"attempts": 0, "next_attempt_at": now, "lease_owner": "", "lease_expires_at": None},
                    now=now,
                )
            DeadLetter.objects.filter(message_id__in=[pk for pk, _ in rows], resolution="").update(
                resolution=DeadLetter.Resolution.RETRIED, resolved_by=actor[:150], resolved_at=now, note=reason
            )
            if rows:
                transaction.on_commit(wake_workers)
    return changed


def message_discard(*, message_ids: Iterable[int], actor: str, reason: str) -> int:
    """Received/Failed/DeadLettered -> Discarded; a reason is required."""
    if not reason or not reason.strip():
        raise ValueError("a reason is required to discard messages")
    changed = 0
    for chunk in _chunks(message_ids):
        with transaction.atomic():
            rows = list(
                Message.objects.select_for_update()
                .filter(pk__in=chunk, state__in=DISCARDABLE_STATES)
                .values_list("pk", "state")
            )
            # The clock is read once the row locks are held: a worker whose transaction we
            # waited for committed earlier, so its event must not look later than ours.
            now = db_now()
            by_state = defaultdict(list)
            for pk, state in rows:
                by_state[state].append(pk)
            for state, ids in by_state.items():
                changed += message_transition(
                    message_ids=ids,
                    from_state=state,
                    to_state=S.DISCARDED,
                    actor=actor,
                    reason=reason,
                    fields={"next_attempt_at": None, "lease_owner": "", "lease_expires_at": None},
                    now=now,
                )
            DeadLetter.objects.filter(message_id__in=[pk for pk, _ in rows], resolution="").update(
                resolution=DeadLetter.Resolution.DISCARDED, resolved_by=actor[:150], resolved_at=now, note=reason
            )
    return changed
