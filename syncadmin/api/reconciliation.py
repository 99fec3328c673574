"""Reconciliation: start a run, get one, the latest matrix, the open discrepancies, ask a terminal to resync.

The console's services (reconciliation/services.py, which audit) and permissions.
"""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations through the
# idempotency wrapper, whose module cannot resolve these names from text.
from datetime import datetime
from typing import Annotated, Any

from django.shortcuts import get_object_or_404
from ninja import Field, Path, Query, Router, Schema, Status

from reconciliation import selectors, services
from reconciliation.models import OPEN_KINDS, ReconciliationRun
from syncadmin.api.auth import actor_of, require
from syncadmin.api.fields import Text
from syncadmin.api.idempotency import idempotent
from syncadmin.api.paging import LIMIT_MAX, PageInfo, page_of
from syncadmin.api.problems import COMMON, Problem, ProblemError
from syncadmin.lib.validation import ID_MAX
from terminals.models import Terminal

VIEW = "reconciliation.view_discrepancy"
RUN = "reconciliation.run_reconciliation"
RESYNC = "reconciliation.request_resync"
RunId = Annotated[int, Path(ge=1, le=ID_MAX)]

router = Router(tags=["reconciliation"])


class RunOut(Schema):
    id: int
    status: str
    trigger: str
    triggered_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    error: str
    terminals_checked: int
    entity_types_checked: int
    cells_checked: int
    counter_drift_count: int
    gap_count: int
    in_flight_count: int
    stale_count: int


class RunPage(Schema):
    items: list[RunOut]
    page: PageInfo


class DiscrepancyOut(Schema):
    id: int
    run_id: int
    terminal_code: str
    entity_type: str
    kind: str
    terminal_count: int | None
    central_count: int
    recount: int
    in_flight: int
    delta: int
    reported_as_of: datetime | None
    explained_at: datetime | None
    explained_by: str
    note: str


class MatrixOut(Schema):
    run: RunOut | None
    entity_types: list[str]
    terminals: list[str]
    rows: dict[str, list[Any]] = Field(
        description="per terminal, per entity type: null (never seen) or [state, counter, reported, in_flight, "
        "recount]; state e equal, i in flight only, g gap, s stale, d counter drift, n no report"
    )


def run_out(run: ReconciliationRun) -> RunOut:
    return RunOut.model_validate(run, from_attributes=True)


class ListParams(Schema):
    after: Text | None = Field(None, max_length=4096)
    before: Text | None = Field(None, max_length=4096)
    limit: int = Field(50, ge=1, le=LIMIT_MAX)


@router.get("/runs", response={200: RunPage, **COMMON}, summary="Reconciliation runs, newest first")
def run_list(request, params: Query[ListParams]):
    require(request, VIEW)
    rows, info = page_of(
        selectors.run_list(), sort=None, allowed={"created_at": "created_at"}, default="-created_at",
        limit=params.limit, after=params.after, before=params.before,
    )  # fmt: skip
    return RunPage(items=[run_out(r) for r in rows], page=info)


@router.post(
    "/runs", response={202: RunOut, 409: Problem, 422: Problem, **COMMON}, summary="Start a run (a worker executes it)"
)
@idempotent
def run_start(request):
    require(request, VIEW, RUN)
    return Status(202, run_out(services.run_request(actor=actor_of(request))))


@router.get("/runs/{run_id}", response={200: RunOut, 404: Problem, **COMMON}, summary="One run")
def run_get(request, run_id: RunId):
    require(request, VIEW)
    return run_out(get_object_or_404(ReconciliationRun.objects.defer("matrix"), pk=run_id))


@router.get(
    "/matrix", response={200: MatrixOut, **COMMON}, summary="The latest finished run's terminal x entity-type matrix"
)
def matrix(request):
    require(request, VIEW)
    run = selectors.run_latest_done(with_matrix=True)
    if run is None or not run.matrix:
        return MatrixOut(run=run_out(run) if run else None, entity_types=[], terminals=[], rows={})
    m = run.matrix
    return MatrixOut(run=run_out(run), entity_types=m["entity_types"], terminals=m["terminals"], rows=m["rows"])


class DiscrepancyParams(Schema):
    all: bool = Field(False, description="every discrepancy of the latest run, in flight and explained ones too")


@router.get(
    "/discrepancies", response={200: list[DiscrepancyOut], **COMMON}, summary="The latest run's open discrepancies"
)
def discrepancy_list(request, params: Query[DiscrepancyParams]):
    require(request, VIEW)
    qs = selectors.discrepancy_current()
    if not params.all:
        qs = qs.filter(kind__in=OPEN_KINDS, explained_at__isnull=True)
    return [DiscrepancyOut.model_validate(d, from_attributes=True) for d in qs.order_by("terminal_code", "entity_type")]


class ResyncIn(Schema):
    terminal: Text = Field(min_length=1, max_length=64, description="terminal code")
    entity_type: Text = Field(min_length=1, max_length=40)
    reason: Text = Field("", max_length=2000)


class ResyncOut(Schema):
    update_id: str
    terminal: str
    entity_type: str


@router.post(
    "/resync",
    response={202: ResyncOut, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Ask a terminal to resend an entity type",
)
@idempotent
def resync(request, body: ResyncIn):
    require(request, VIEW, RESYNC)
    if "\x00" in body.terminal + body.reason:
        raise ProblemError(400, "text may not contain NUL")
    terminal = get_object_or_404(Terminal, code=body.terminal)
    try:
        update = services.resync_request(
            terminal=terminal, entity_type=body.entity_type, actor=actor_of(request), reason=body.reason.strip()
        )
    except services.ReconciliationError as exc:
        raise ProblemError(400, str(exc), errors=[("body.entity_type", str(exc))]) from exc
    return Status(202, ResyncOut(update_id=update.update_id, terminal=terminal.code, entity_type=body.entity_type))
