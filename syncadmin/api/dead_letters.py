"""Dead letters: the open failure groups (by reason, terminal or entity type) with counts, first/last seen and
the operators' notes; a note on a group; an action on a whole group (as the console's group buttons).
"""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations through the
# idempotency wrapper, whose module cannot resolve these names from text.
from datetime import datetime
from typing import Literal

from django.http import QueryDict
from ninja import Field, Query, Router, Schema

from messages import selectors
from messages.filtersets import message_filterset
from messages.models import BULK_RATE_MAX, VIEW_PERM, MessageState
from messages.services.console import deadletter_group_note_set
from syncadmin.api.auth import actor_of, require
from syncadmin.api.fields import Text
from syncadmin.api.idempotency import idempotent
from syncadmin.api.messages import BulkOut, bulk_run
from syncadmin.api.problems import COMMON, Problem, ProblemError

VIEW_DEAD = "queue_messages.view_deadletter"
ANNOTATE = "queue_messages.annotate_deadletter"
Grouping = Literal["reason", "terminal", "entity"]
# A group, as a filter of the message list (the console's "show these messages" link).
GROUP_FILTER = {"reason": "group", "terminal": "terminal", "entity": "entity_type"}

router = Router(tags=["dead letters"])


class GroupOut(Schema):
    grouping: str
    key: str
    count: int
    first_seen: datetime
    last_seen: datetime
    sample: str = Field(description="one of the group's failure reasons")
    note: str
    note_by: str
    note_at: datetime | None


class GroupList(Schema):
    grouping: str
    total: int
    groups: list[GroupOut]


class GroupParams(Schema):
    by: Grouping = "reason"


@router.get("/groups", response={200: GroupList, **COMMON}, summary="Open dead letters, grouped")
def deadletter_groups(request, params: Query[GroupParams]):
    require(request, VIEW_PERM, VIEW_DEAD)
    groups = selectors.deadletter_groups(grouping=params.by)
    notes = selectors.deadletter_group_notes(grouping=params.by)
    out = []
    for g in groups:
        key = g["key"] or ""
        note = notes.get(key)
        out.append(GroupOut(
            grouping=params.by, key=key, count=g["count"], first_seen=g["first_seen"], last_seen=g["last_seen"],
            sample=g["sample"] or "", note=note.note if note else "", note_by=note.updated_by if note else "",
            note_at=note.updated_at if note else None,
        ))  # fmt: skip
    return GroupList(grouping=params.by, total=sum(g.count for g in out), groups=out)


class NoteIn(Schema):
    grouping: Grouping
    key: Text = Field(min_length=1, max_length=255)
    note: Text = Field("", max_length=2000, description="empty clears it")


class NoteOut(Schema):
    grouping: str
    key: str
    note: str
    updated_by: str
    updated_at: datetime


def _text(value: str, field: str) -> str:
    if "\x00" in value:
        raise ProblemError(400, "text may not contain NUL", errors=[(field, "contains NUL")])
    return value


@router.post(
    "/groups/note",
    response={200: NoteOut, 422: Problem, 409: Problem, **COMMON},
    summary="Write (or clear) the note on a group",
)
@idempotent
def deadletter_note(request, body: NoteIn):
    require(request, VIEW_PERM, ANNOTATE)
    note = deadletter_group_note_set(
        grouping=body.grouping,
        key=_text(body.key, "body.key"),
        note=_text(body.note, "body.note"),
        actor=actor_of(request),
    )
    return NoteOut(
        grouping=note.grouping, key=note.key, note=note.note, updated_by=note.updated_by, updated_at=note.updated_at
    )


class GroupActionIn(Schema):
    by: Grouping
    key: Text = Field(min_length=1, max_length=255)
    action: Literal["retry", "discard"]
    reason: Text = Field("", max_length=1000, description="required to discard")
    dry_run: bool = False
    rate: int | None = Field(None, ge=1, le=BULK_RATE_MAX, description="throttle: at most so many messages per second")


@router.post(
    "/groups/actions",
    response={200: BulkOut, 202: BulkOut, 409: Problem, 422: Problem, **COMMON},
    summary="Retry or discard a whole group",
)
@idempotent
def deadletter_group_action(request, body: GroupActionIn):
    require(request, VIEW_PERM, VIEW_DEAD)
    query = QueryDict(mutable=True)
    query.update({"state": MessageState.DEAD_LETTERED, GROUP_FILTER[body.by]: _text(body.key, "body.key")})
    fs = message_filterset(query)
    if not fs.is_valid():  # e.g. no terminal has that code
        raise ProblemError(
            400, "no such group", errors=[("body.key", " ".join(" ".join(v) for v in fs.errors.values()))]
        )
    params = {"scope": "filter", "query": query.urlencode(), "filters": fs.active}
    return bulk_run(
        request, action=body.action, params=params, reason=body.reason, dry_run=body.dry_run, rate=body.rate
    )
