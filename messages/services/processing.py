"""Applying a claimed batch: central writes and state changes commit together or not at all.

The claim is messages/services/claim.py; what a failing message becomes (backoff, dead letter)
is messages/services/failures.py.
"""

from __future__ import annotations

import logging
import random
import time
import traceback as tb
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connections, transaction

from messages import metrics as observe
from messages.central_store import counters_at_end
from messages.handlers import Item, PermanentError, registry
from messages.models import Message, MessageState
from messages.services.failures import (
    backoff_seconds,
    error_text,
    is_infrastructure_error,
    is_retryable_conflict,
    message_dead_letter,
    message_fail,
)
from messages.services.transitions import NOOP_REASON, IllegalTransition, messages_complete
from syncadmin.lib.clock import db_now
from syncadmin.lib.counters import collected
from syncadmin.lib.fastsql import PipelineFromHere
from syncadmin.lib.jsontext import json_parse
from syncadmin.lib.routers import central_alias
from syncadmin.lib.sql import per_vendor

S = MessageState
log = logging.getLogger("messages.services")


@contextmanager
def engine_session() -> Iterator[None]:
    """A drain's database session: on PostgreSQL, commits that do not wait for the WAL flush.

    Why it is safe (settings.SYNC_WORKER_ASYNC_COMMIT): what a crash can take back is a claim,
    after which the message is simply due again, or a whole batch, central writes and state
    changes together, which is then applied again with the same result. Measured: the two
    commits per batch spent a fifth of the drain waiting on the WAL flush. Session-wide for
    the drain only, and reset after it: other tasks on the same worker (bulk jobs, purges)
    keep synchronous commits.
    """
    aliases = {Message.objects.db, central_alias()} if settings.SYNC_WORKER_ASYNC_COMMIT else set()
    for alias in aliases:
        _asynchronous_commit(alias, True)
    try:
        yield
    finally:
        for alias in aliases:
            try:
                _asynchronous_commit(alias, False)
            except DatabaseError:  # the connection is gone: its session settings went with it
                pass


@per_vendor
def _asynchronous_commit(using: str, on: bool) -> None:
    """Only PostgreSQL can commit without waiting for its log flush: nothing to do elsewhere."""


@_asynchronous_commit.vendor("postgresql")
def _asynchronous_commit_postgresql(using: str, on: bool) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("SET synchronous_commit = off" if on else "RESET synchronous_commit")


@dataclass
class BatchResult:
    processed: int = 0
    noop: int = 0
    failed: int = 0
    dead_lettered: int = 0
    released: int = 0  # handed back after an error the batch did not handle (message_release)
    # The database failed (unreachable, connection lost), not a message: claim nothing more for now.
    database_failed: bool = False

    def add(self, other: BatchResult) -> None:
        for name in ("processed", "noop", "failed", "dead_lettered", "released"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.database_failed |= other.database_failed


def _prepare(messages: Sequence[Message]) -> tuple[list[Item], list[tuple[Message, PermanentError]]]:
    items, rejected = [], []
    for m in messages:
        handler = registry.resolve(m.message_type)
        if handler is None:
            rejected.append((m, PermanentError(f"no handler for message type {m.message_type!r}")))
            continue
        try:
            payload = json_parse(m.payload) if m.payload.strip() else None
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
            if not is_retryable_conflict(exc) or attempt == 2:
                raise
            # Two batches that deadlocked and retry at the same instant can deadlock again.
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")


def _process_batch_once(messages: Sequence[Message], worker: str) -> BatchResult:
    """The whole batch in one transaction with no savepoint; if a message in it fails, replay.

    A batch that applies cleanly, nearly all of them, costs no SAVEPOINT/RELEASE round trips.
    A unique-key race with another worker creating the same central entity (databases other
    than PostgreSQL, whose insert skips that row and re-applies its items: handlers.py) fails
    the pass; it is run again (the other worker's row is then seen and locked) before falling
    back to replaying the batch one message at a time, each in a savepoint of its own, so that
    one bad message cannot fail the others.
    """
    started = time.perf_counter()
    items, rejected = _prepare(messages)
    central = central_alias()
    for attempt in range(3):
        try:
            # Exits in reverse: metric deltas, then the live counters (handlers.counters_at_end:
            # the rows other batches wait on, so locked last), then the commit; those three in
            # one round trip (the pipeline, started once the batch's own statements are done).
            with (
                PipelineFromHere(Message.objects.db) as tail,
                transaction.atomic(),
                transaction.atomic(using=central, savepoint=False),
                counters_at_end(central),
                collected(),
            ):
                _apply(items)
                result = _finish(messages, items, rejected, [], worker=worker, started=started)
                tail.start()
                return result
        except Exception as exc:
            if is_infrastructure_error(exc) or is_retryable_conflict(exc) or isinstance(exc, IllegalTransition):
                raise
            for item in items:
                item.applied, item.note = False, ""
            if len(items) == 1 and not (isinstance(exc, IntegrityError) and attempt < 2):
                # Nothing to replay: the one message is the one that failed.
                return _process_batch_replay(messages, [], rejected, [(items[0], exc, tb.format_exc())],
                                             worker=worker, started=started)  # fmt: skip
            if not isinstance(exc, IntegrityError) or attempt == 2:
                log.info("batch of %s replayed one at a time after %s: %s", len(items), type(exc).__name__, exc)
                break
    return _process_batch_replay(messages, items, rejected, [], worker=worker, started=started)


def _process_batch_replay(
    messages: Sequence[Message], items: list[Item], rejected: list, failures: list, *, worker: str, started: float
) -> BatchResult:
    """Each message in a savepoint of its own: the ones that apply commit, the others fail alone."""
    central = central_alias()
    with transaction.atomic(), transaction.atomic(using=central, savepoint=False), collected():
        ok: list[Item] = []
        for item in items:
            item.applied, item.note = False, ""
            try:
                with transaction.atomic(using=central):
                    _apply([item])
                ok.append(item)
            except Exception as exc:
                if is_infrastructure_error(exc) or is_retryable_conflict(exc):
                    raise
                failures.append((item, exc, tb.format_exc()))
        return _finish(messages, ok, rejected, failures, worker=worker, started=started)


def _finish(
    messages: Sequence[Message], ok: list[Item], rejected: list, failures: list, *, worker: str, started: float
) -> BatchResult:
    """Move every message of the batch to its outcome's state, inside the batch's transaction."""
    outcomes: dict[int, tuple[str, str]] = {}  # pk -> (outcome, reason), for observability
    result = BatchResult()
    applied = [i.message.pk for i in ok if i.applied]
    noop = [i.message.pk for i in ok if not i.applied]
    # The completion first: it reads the database's clock in its own statement, and the batch's
    # other outcomes are stamped with the same time.
    now = messages_complete(applied=applied, noop=noop, worker=worker, reason=NOOP_REASON)
    result.processed, result.noop = len(applied), len(noop)
    outcomes.update({pk: ("processed", "") for pk in applied})
    outcomes.update({pk: ("noop", NOOP_REASON) for pk in noop})
    for m, exc in rejected:
        message_dead_letter(m, actor=worker, reason=str(exc), error_class="PermanentError", now=now)
        result.dead_lettered += 1
        outcomes[m.pk] = ("dead_lettered", str(exc))
    for item, exc, trace in failures:
        m = item.message
        error_class = type(exc).__name__
        reason = error_text(str(exc)) or error_class
        trace = error_text(trace)
        if isinstance(exc, PermanentError) or m.attempts >= settings.SYNC_MAX_ATTEMPTS:
            if not isinstance(exc, PermanentError):
                reason = f"gave up after {m.attempts} attempts: {reason}"
            message_dead_letter(m, actor=worker, reason=reason, error_class=error_class, traceback=trace, now=now)
            result.dead_lettered += 1
            outcomes[m.pk] = ("dead_lettered", reason)
        else:
            message_fail(m, worker=worker, reason=reason, error_class=error_class, traceback=trace,
                  delay=backoff_seconds(m.attempts), now=now, savepoint=False)  # fmt: skip
            result.failed += 1
            outcomes[m.pk] = ("failed", reason)
    observe.batch_finished(messages=messages, outcomes=outcomes, started=started, now=now, worker=worker)
    return result


# --- errors the batch does not handle ----------------------------------------------------------


def message_process_claimed(*, messages: Sequence[Message], worker: str) -> BatchResult:
    """Apply a drain's claimed batch, and never leave it leased after an error nobody handled.

    ``message_process_batch`` deals with what a handler raises (that message fails alone). What
    else escapes it (the batch machinery, the central store's SQL, a counter, a broken handler
    registry, repeated deadlocks, a lost connection) used to end the drain and leave every message
    of the batch Processing until its lease ran out (SYNC_LEASE_SECONDS). Now the error is logged
    once, with its traceback, and each message is applied again on its own, so that one message
    that breaks its batch cannot drag the others down with it (as the one-at-a-time re-claim of
    expired leases also ensures); whatever still fails is released (``message_release``) with
    its attempt counted, so a message that always breaks its batch still ends DeadLettered after
    SYNC_MAX_ATTEMPTS.

    A database failure (unreachable, connection lost) that the first message alone meets again is
    the database's, not a message's: the rest of the batch is released untried, with backoff, and
    ``database_failed`` tells the drain to claim nothing more for now, so that an outage of the
    central store cannot spend every message's attempts in seconds. A lost lease (IllegalTransition)
    is raised as before: those messages are another worker's now. If the database cannot be
    reached at all the release raises (DatabaseError), and the messages keep their lease, whose
    end brings them back.
    """
    try:
        return message_process_batch(messages=messages, worker=worker)
    except IllegalTransition:
        raise
    except Exception as exc:
        log.error(
            "batch of %s message(s) failed with an error the engine does not handle (%s: %s); applying them one"
            " at a time, releasing those that fail",
            len(messages),
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        failure = exc
    result = BatchResult()
    untried = list(messages)
    if len(messages) > 1:
        _reset_broken_connections()
        went_through = False  # some message alone reached its end: the database works
        while untried:
            m = untried[0]
            try:
                result.add(message_process_batch(messages=[m], worker=worker))
                went_through = True
            except IllegalTransition:
                pass  # its lease ran out and another worker re-claimed it: that worker's now
            except Exception as exc:
                if is_infrastructure_error(exc) and not went_through:
                    failure = exc  # alone too, and nothing has gone through: the database is failing
                    break
                result.released += message_release(messages=[m], worker=worker, error=exc)
            untried.pop(0)
    if untried:  # the batch's one message, or what a failing database left untried
        result.released += message_release(messages=untried, worker=worker, error=failure)
        result.database_failed = is_infrastructure_error(failure)
    return result


def message_release(*, messages: Sequence[Message], worker: str, error: BaseException) -> int:
    """Hand claimed messages back after an error their batch did not handle; how many moved.

    Processing -> Failed (the lifecycle's one "retry later" move; the attempt was counted when the
    message was claimed), or DeadLettered if that was its last attempt, each with its event:
    reason, error class, traceback. Due again at once, except after a database failure
    (unreachable, connection lost), where it waits the usual backoff (SYNC_BACKOFF_BASE_SECONDS,
    doubling): seconds, not a lease, and an outage does not use up its attempts at once.

    Only messages still Processing under ``worker``'s lease move: a batch whose commit went
    through although its connection failed (the client cannot tell) stays as it committed, and a
    message another worker has re-claimed (the only thing that locks a Processing message: such
    rows are skipped) is left to it, so nothing is applied twice. One transaction of its own: if
    the database cannot be reached it raises, having changed nothing, and the lease brings the
    messages back when it ends.
    """
    _reset_broken_connections()
    error_class = type(error).__name__[:200]
    detail = error_text(str(error)) or error_class
    trace = error_text("".join(tb.format_exception(error)))
    reason = f"released after an error its batch did not handle: {error_class}: {detail}"
    with transaction.atomic(), collected():
        held = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(pk__in=[m.pk for m in messages], state=S.PROCESSING, lease_owner=worker)
            .only("id", "state", "attempts", "lease_owner")
            .order_by("pk")
        )
        now = db_now()
        retry = [m for m in held if m.attempts < settings.SYNC_MAX_ATTEMPTS]
        for m in held:
            if m.attempts >= settings.SYNC_MAX_ATTEMPTS:
                message_dead_letter(m, actor=worker, reason=f"gave up after {m.attempts} attempts: {reason}",
                             error_class=error_class, traceback=trace, now=now)  # fmt: skip
        for m in retry:  # one transition per message: each has its own due time
            delay = backoff_seconds(m.attempts) if is_infrastructure_error(error) else 0.0
            message_fail(
                m, worker=worker, reason=reason, error_class=error_class, traceback=trace, delay=delay, now=now
            )
    if held:
        log.warning(
            "released %s message(s) of %s after %s: %s (%s of them dead-lettered, their attempts used)",
            len(held),
            worker,
            error_class,
            detail,
            len(held) - len(retry),
        )
    return len(held)


def _reset_broken_connections() -> None:
    """Drop a connection the failed batch broke, so the next query opens a new one.

    Django closes a connection whose rollback failed; one that failed another way is found here
    (one SELECT 1, only after an error). Never inside a transaction: that is the caller's.
    """
    for alias in {Message.objects.db, central_alias()}:
        conn = connections[alias]
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()
