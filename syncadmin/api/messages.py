"""Messages: the console's filtered list with keyset cursors, one message with its lifecycle, and the operator
actions (retry, discard, restore, edit and retry) on one message, a selection or everything a filter matches.

Same filterset (messages/filtersets.py), same services (messages/services/console.py and bulk.py, which
audit) and same permissions as the console.
"""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations through the
# idempotency wrapper, whose module cannot resolve these names from text.
from datetime import date, datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from django.http import QueryDict
from django.shortcuts import get_object_or_404
from ninja import Field, Path, Query, Router, Schema, Status

from messages import selectors
from messages.filtersets import message_filter_queryset, message_filterset
from messages.models import ACTION_PERMS, ACTION_STATES, BULK_RATE_MAX, VIEW_PERM, DeadLetter, Message
from messages.selectors.pauses import message_due
from messages.services.bulk import BulkRefused, actionable, bulk_action_start, job_queryset
from messages.services.console import (
    ActionRefused,
    message_edit_and_retry,
    message_operator_discard,
    message_operator_restore,
    message_operator_retry,
)
from syncadmin.api.auth import actor_of, require
from syncadmin.api.bulk_jobs import BulkJobOut, job_out
from syncadmin.api.fields import Text
from syncadmin.api.idempotency import idempotent
from syncadmin.api.paging import LIMIT_MAX, PageInfo, page_of
from syncadmin.api.problems import COMMON, Problem, ProblemError, field_errors
from syncadmin.lib.validation import ID_MAX

EDIT_PERM = "queue_messages.edit_payload"
IDS_MAX = 10_000  # ids in one selection: more is a filter's job
Action = Literal["retry", "discard", "restore"]
MessageId = Annotated[int, Path(ge=1, le=ID_MAX, description="the hub's id of the message")]

router = Router(tags=["messages"])


class MessageOut(Schema):
    id: int
    terminal: str
    message_id: str
    message_type: str
    entity_type: str
    entity_key: str
    sequence: int
    state: str
    attempts: int
    last_error: str
    created_at: datetime
    received_at: datetime
    updated_at: datetime
    processed_at: datetime | None
    next_attempt_at: datetime | None = Field(
        description="when it is (or was) due; a paused message keeps its own due time here (see paused)"
    )
    paused: bool = Field(False, description="a pause holds it back (parked): it is taken again when the pause ends")
    trace_id: str


class EventOut(Schema):
    from_state: str
    to_state: str
    at: datetime
    actor: str
    reason: str
    error_class: str
    attempt: int


class DeadLetterOut(Schema):
    reason: str
    error_class: str
    group_key: str
    dead_lettered_at: datetime
    resolution: str
    resolved_by: str
    resolved_at: datetime | None


class MessageDetail(MessageOut):
    payload: str
    events: list[EventOut]
    dead_letter: DeadLetterOut | None


class MessagePage(Schema):
    items: list[MessageOut]
    page: PageInfo


class MessageFilters(Schema):
    """The console's message filters (/messages/ takes the same parameters)."""

    q: Text | None = Field(None, max_length=200, description="the terminal's message id, or the hub's id")
    state: Text | None = Field(None, max_length=32)
    terminal: Text | None = Field(None, max_length=64, description="terminal code")
    message_type: Text | None = Field(None, max_length=64)
    entity_type: Text | None = Field(None, max_length=40)
    entity_key: Text | None = Field(None, max_length=128)
    received_after: date | None = None
    received_before: date | None = None
    error: Text | None = Field(None, max_length=200, description="in the last error's text")
    group: Text | None = Field(None, max_length=255, description="open dead letters of one failure group (its key)")

    def query_string(self) -> str:
        data = {
            k: v.isoformat() if isinstance(v, date) else v for k, v in self.model_dump().items() if v not in (None, "")
        }
        return urlencode(data)


class ListParams(MessageFilters):
    sort: Text | None = Field(
        None, max_length=40, description="received_at (default, newest first: -received_at), updated_at, state, ..."
    )
    after: Text | None = Field(None, max_length=4096)
    before: Text | None = Field(None, max_length=4096)
    limit: int = Field(50, ge=1, le=LIMIT_MAX)


def message_out(message: Message) -> MessageOut:
    return MessageOut.model_validate(_fields(message, MessageOut))


def _fields(message: Message, schema) -> dict:
    skip = {"terminal", "next_attempt_at", "paused"}
    data = {f: getattr(message, f) for f in schema.model_fields if f in MessageOut.model_fields and f not in skip}
    due_at, parked = message_due(next_attempt_at=message.next_attempt_at)
    return {**data, "terminal": message.terminal.code, "next_attempt_at": due_at, "paused": parked}


def _filterset(filters: MessageFilters, location: str):
    """The console's filterset over these filters; 400 (with the fields at fault) when one is not valid."""
    fs = message_filterset(QueryDict(filters.query_string()))
    if not fs.is_valid():
        raise ProblemError(400, "a filter is not valid: see errors", errors=field_errors(fs.errors, location))
    return fs


@router.get("", response={200: MessagePage, **COMMON}, summary="List messages (the console's filters, keyset cursors)")
def message_list(request, params: Query[ListParams]):
    require(request, VIEW_PERM)
    fs = _filterset(params, "query")
    rows, info = page_of(
        fs.qs, sort=params.sort, allowed=selectors.MESSAGE_SORTS, default="-received_at",
        limit=params.limit, after=params.after, before=params.before,
    )  # fmt: skip
    return MessagePage(items=[message_out(m) for m in rows], page=info)


# --- on a selection or a filter ---------------------------------------------------------------------
# Before "/{message_id}": the first route of a path decides which methods it answers.


class BulkIn(Schema):
    action: Action
    ids: list[Annotated[int, Field(ge=1, le=ID_MAX)]] | None = Field(
        None, min_length=1, max_length=IDS_MAX, description="these messages (hub ids)"
    )
    filter: MessageFilters | None = Field(None, description="or every message these filters match")
    reason: Text = Field("", max_length=1000, description="required to discard")
    dry_run: bool = Field(False, description="only count the messages the action would change")
    rate: int | None = Field(
        None, ge=1, le=BULK_RATE_MAX,
        description="throttle: at most this many messages per second (more than one second of it runs as a job)",
    )  # fmt: skip


class BulkOut(Schema):
    dry_run: bool
    count: int | None = Field(description="dry run: how many messages the action would change")
    changed: int | None = Field(description="done at once: how many changed")
    job: BulkJobOut | None = Field(description="a large action: the background job doing it")


def bulk_run(request, *, action: str, params: dict, reason: str, dry_run: bool, rate: int | None = None):
    """Count (dry run) or start the console's bulk action on ``params``: at once, or as a bulk job (202)."""
    require(request, VIEW_PERM, ACTION_PERMS[action])
    reason = _reason(reason, "body.reason", required=action == "discard" and not dry_run)
    if dry_run:
        queryset = job_queryset(params=params, message_filter=message_filter_queryset)
        count = actionable(queryset=queryset, action=action).count()
        return Status(200, BulkOut(dry_run=True, count=count, changed=None, job=None))
    try:
        outcome = bulk_action_start(
            action=action, params=params, actor=actor_of(request), reason=reason, rate=rate,
            message_filter=message_filter_queryset,
        )  # fmt: skip
    except BulkRefused as exc:
        raise ProblemError(400, str(exc)) from exc
    if outcome.job is not None:
        return Status(202, BulkOut(dry_run=False, count=None, changed=None, job=job_out(outcome.job)))
    return Status(200, BulkOut(dry_run=False, count=None, changed=outcome.changed, job=None))


@router.post(
    "/actions",
    response={200: BulkOut, 202: BulkOut, 409: Problem, 422: Problem, **COMMON},
    summary="Retry, discard or restore a selection or a filter (dry run: count)",
)
@idempotent
def message_bulk(request, body: BulkIn):
    if (body.ids is None) == (body.filter is None):
        raise ProblemError(
            400, "give ids or filter (one of them)", errors=[("body.ids", "ids or filter, not both or neither")]
        )
    if body.ids is not None:
        params = {"scope": "selected", "ids": sorted(set(body.ids))}
    else:
        fs = _filterset(body.filter, "body.filter")
        params = {"scope": "filter", "query": body.filter.query_string(), "filters": fs.active}
    return bulk_run(
        request, action=body.action, params=params, reason=body.reason, dry_run=body.dry_run, rate=body.rate
    )


# --- one message ---------------------------------------------------------------------------------


def _load(message_id: int) -> Message:
    return get_object_or_404(Message.objects.select_related("terminal"), pk=message_id)


def _detail(message: Message) -> MessageDetail:
    dead = DeadLetter.objects.filter(message=message).first()
    events = selectors.message_lifecycle(message_id=message.pk)
    return MessageDetail.model_validate({
        **_fields(message, MessageOut),
        "payload": message.payload,
        "events": [EventOut.model_validate(e, from_attributes=True) for e in events],
        "dead_letter": DeadLetterOut.model_validate(dead, from_attributes=True) if dead else None,
    })  # fmt: skip


@router.get(
    "/{message_id}",
    response={200: MessageDetail, 404: Problem, **COMMON},
    summary="One message with payload and lifecycle",
)
def message_get(request, message_id: MessageId):
    require(request, VIEW_PERM)
    return _detail(_load(message_id))


class Reason(Schema):
    reason: Text = Field("", max_length=1000)


class RequiredReason(Schema):
    reason: Text = Field(min_length=1, max_length=1000, description="required: kept in the audit log")


class EditIn(Schema):
    payload: Text = Field(min_length=1, max_length=1_000_000, description="the new payload: JSON text")
    reason: Text = Field(min_length=1, max_length=1000)


def _reason(value: str, field: str, *, required: bool) -> str:
    value = value.strip()
    if "\x00" in value:
        raise ProblemError(400, "the reason may not contain NUL", errors=[(field, "contains NUL")])
    if required and not value:
        raise ProblemError(400, "a reason is required", errors=[(field, "required")])
    return value


def _act(request, message_id: int, action: str, service, reason: str) -> MessageDetail:
    require(request, VIEW_PERM, ACTION_PERMS[action])
    message = _load(message_id)
    if message.state not in ACTION_STATES[action]:
        raise ProblemError(
            409,
            f"cannot {action} a {message.state} message (only {', '.join(ACTION_STATES[action])})",
            kind="illegal-transition",
        )
    if not service(message_ids=[message.pk], actor=actor_of(request), reason=reason):
        message.refresh_from_db()  # a worker or another operator moved it first
        raise ProblemError(409, f"the message is {message.state} now; nothing changed", kind="illegal-transition")
    return _detail(_load(message_id))


@router.post(
    "/{message_id}/retry",
    response={200: MessageDetail, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Retry a Failed or DeadLettered message",
)
@idempotent
def message_retry(request, message_id: MessageId, body: Reason):
    return _act(
        request, message_id, "retry", message_operator_retry, _reason(body.reason, "body.reason", required=False)
    )


@router.post(
    "/{message_id}/discard",
    response={200: MessageDetail, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Discard a message (reason required)",
)
@idempotent
def message_discard(request, message_id: MessageId, body: RequiredReason):
    return _act(
        request, message_id, "discard", message_operator_discard, _reason(body.reason, "body.reason", required=True)
    )


@router.post(
    "/{message_id}/restore",
    response={200: MessageDetail, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Restore a Discarded message",
)
@idempotent
def message_restore(request, message_id: MessageId, body: Reason):
    return _act(
        request, message_id, "restore", message_operator_restore, _reason(body.reason, "body.reason", required=False)
    )


@router.post(
    "/{message_id}/edit",
    response={200: MessageDetail, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Replace a dead letter's payload and retry it",
)
@idempotent
def message_edit(request, message_id: MessageId, body: EditIn):
    require(request, VIEW_PERM, EDIT_PERM)
    message = _load(message_id)
    reason = _reason(body.reason, "body.reason", required=True)
    if "\x00" in body.payload:
        raise ProblemError(400, "the payload may not contain NUL", errors=[("body.payload", "contains NUL")])
    try:
        message_edit_and_retry(message_id=message.pk, payload=body.payload, actor=actor_of(request), reason=reason)
    except ActionRefused as exc:
        if exc.field:  # the input was at fault, not the message's state
            raise ProblemError(400, str(exc), errors=[(f"body.{exc.field}", str(exc))]) from exc
        raise ProblemError(409, str(exc), kind="illegal-transition") from exc
    return _detail(_load(message_id))
