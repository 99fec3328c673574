"""Pauses of processing: list the active ones, pause a message type, entity type or terminal, resume
(messages/services/pauses.py, the console's /pauses/ page)."""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations through the
# idempotency wrapper, whose module cannot resolve these names from text.
from datetime import datetime
from typing import Annotated, Literal

from ninja import Field, Path, Router, Schema, Status

from messages.models import PAUSE_PERM, VIEW_PERM
from messages.selectors.pauses import PauseRow, queue_pauses
from messages.services.console import ActionRefused
from messages.services.pauses import PauseExists, queue_pause_create, queue_pause_resume
from syncadmin.api.auth import actor_of, require
from syncadmin.api.fields import Text
from syncadmin.api.idempotency import idempotent
from syncadmin.api.problems import COMMON, Problem, ProblemError
from syncadmin.lib.validation import ID_MAX

PauseId = Annotated[int, Path(ge=1, le=ID_MAX)]
Scope = Literal["message_type", "entity_type", "terminal"]

router = Router(tags=["pauses"])


class PauseOut(Schema):
    id: int
    scope: str
    value: str
    reason: str
    paused_by: str
    paused_at: datetime
    waiting: int | None = Field(description="Received + Failed messages it holds back, counted up to 10,000")
    waiting_more: bool | None = Field(description="more than 10,000 wait")


class PauseList(Schema):
    items: list[PauseOut]


def _out(row: PauseRow | None, pause=None, pk: int | None = None) -> PauseOut:
    pause = row.pause if row else pause
    return PauseOut(
        id=pk or pause.pk, scope=pause.scope, value=pause.value, reason=pause.reason, paused_by=pause.paused_by,
        paused_at=pause.paused_at, waiting=row.waiting if row else None, waiting_more=row.more if row else None,
    )  # fmt: skip


@router.get("", response={200: PauseList, **COMMON}, summary="Active pauses, oldest first")
def pause_list(request):
    require(request, VIEW_PERM)
    return PauseList(items=[_out(row) for row in queue_pauses()])


class PauseIn(Schema):
    scope: Scope
    value: Text = Field(min_length=1, max_length=64, description="a message type, an entity type or a terminal's code")
    reason: Text = Field(min_length=1, max_length=1000)


def _refused(exc: ActionRefused) -> ProblemError:
    if isinstance(exc, PauseExists):
        return ProblemError(409, str(exc))
    return ProblemError(400, str(exc), errors=[(f"body.{exc.field or 'value'}", str(exc))])


@router.post("", response={201: PauseOut, 409: Problem, 422: Problem, **COMMON}, summary="Pause processing")
@idempotent
def pause_create(request, body: PauseIn):
    require(request, VIEW_PERM, PAUSE_PERM)
    for name in ("value", "reason"):
        if "\x00" in getattr(body, name):
            raise ProblemError(400, "text may not contain NUL", errors=[(f"body.{name}", "contains NUL")])
    try:
        pause = queue_pause_create(scope=body.scope, value=body.value, reason=body.reason, actor=actor_of(request))
    except ActionRefused as exc:
        raise _refused(exc) from exc
    return Status(201, _out(None, pause))


class ResumeIn(Schema):
    reason: Text = Field("", max_length=1000)


@router.post(
    "/{pause_id}/resume",
    response={200: PauseOut, 404: Problem, 422: Problem, **COMMON},
    summary="Resume: the workers take the paused messages in their order",
)
@idempotent
def pause_resume(request, pause_id: PauseId, body: ResumeIn):
    require(request, VIEW_PERM, PAUSE_PERM)
    if "\x00" in body.reason:
        raise ProblemError(400, "text may not contain NUL", errors=[("body.reason", "contains NUL")])
    try:
        pause = queue_pause_resume(pause_id=pause_id, actor=actor_of(request), reason=body.reason)
    except ActionRefused as exc:
        raise ProblemError(404, "no active pause has this id") from exc
    return _out(None, pause, pk=pause_id)  # deleted: the instance has no pk any more
