"""Terminals: list, get, create (key once), update, enable/disable, rotate key (key once), bulk create.

The console's services (terminals/services_console.py), which audit; the console's permissions.
"""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations through the
# idempotency wrapper, whose module cannot resolve these names from text.
from datetime import datetime

from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status

from syncadmin.api.auth import actor_of, require
from syncadmin.api.fields import Text, storable
from syncadmin.api.idempotency import idempotent
from syncadmin.api.paging import LIMIT_MAX, PageInfo, page_of
from syncadmin.api.problems import COMMON, Problem, ProblemError
from syncadmin.lib.clock import db_now
from syncadmin.lib.sql import IN_LIST_MAX, chunks
from terminals.forms import CODE_RE
from terminals.models import Terminal
from terminals.selectors import terminal_list_queryset, terminal_online_threshold
from terminals.services_console import (
    terminal_operator_create,
    terminal_operator_rotate_key,
    terminal_set_enabled,
    terminal_update,
)

VIEW = "terminals.view_terminal"
MANAGE = "terminals.manage_terminal"
ROTATE = "terminals.rotate_key"
BULK_MAX = 5000  # terminals in one bulk create: a rollout of thousands in one call, one transaction

router = Router(tags=["terminals"])


class TerminalOut(Schema):
    id: int
    code: str
    name: str
    store: str
    enabled: bool
    online: bool
    last_heartbeat_at: datetime | None
    last_seen_at: datetime | None
    key_rotated_at: datetime | None
    app_version: str
    reported_backlog: int | None
    created_at: datetime


class TerminalPage(Schema):
    items: list[TerminalOut]
    page: PageInfo


class TerminalIn(Schema):
    code: Text = Field(min_length=1, max_length=64, description="letters, digits, '.', '_' or '-'")
    name: Text = Field("", max_length=200)
    store: Text = Field("", max_length=200)


class TerminalPatch(Schema):
    name: Text | None = Field(None, max_length=200)
    store: Text | None = Field(None, max_length=200)


class TerminalWithKey(Schema):
    terminal: TerminalOut
    api_key: str = Field(description="the terminal's SOAP key: shown in this answer only")


class BulkCreateIn(Schema):
    terminals: list[TerminalIn] = Field(min_length=1, max_length=BULK_MAX)


class BulkCreateOut(Schema):
    created: list[TerminalWithKey]


class Reason(Schema):
    reason: Text = Field("", max_length=1000)


class Filters(Schema):
    q: Text = Field("", max_length=200, description="in code, name or store")
    enabled: bool | None = None
    online: bool | None = None
    store: Text | None = Field(None, max_length=200)
    after: Text | None = Field(None, max_length=4096)
    before: Text | None = Field(None, max_length=4096)
    limit: int = Field(50, ge=1, le=LIMIT_MAX)


def _out(terminal: Terminal, threshold: datetime) -> TerminalOut:
    online = bool(terminal.enabled and terminal.last_heartbeat_at and terminal.last_heartbeat_at >= threshold)
    return TerminalOut.model_validate(
        {**{f: getattr(terminal, f) for f in TerminalOut.model_fields if f != "online"}, "online": online}
    )


def _one(terminal: Terminal) -> TerminalOut:
    return _out(terminal, terminal_online_threshold(now=db_now()))


def _get(code: str) -> Terminal:
    if not storable(code):  # no terminal can have it; the database would refuse the query
        raise Http404(f"no terminal {code!r}")
    return get_object_or_404(Terminal, code=code)


def _check_code(code: str, field: str) -> str:
    code = code.strip()
    if not CODE_RE.match(code):
        raise ProblemError(
            400, f"{code!r} is not a terminal code", errors=[(field, "letters, digits, '.', '_' or '-' (at most 64)")]
        )
    return code


def _text(value: str, field: str) -> str:
    if "\x00" in value:
        raise ProblemError(400, "text may not contain NUL", errors=[(field, "contains NUL")])
    return value.strip()


@router.get("", response={200: TerminalPage, **COMMON}, summary="List terminals")
def terminal_list(request, filters: Query[Filters]):
    require(request, VIEW)
    now = db_now()
    qs = terminal_list_queryset(now=now)
    threshold = terminal_online_threshold(now=now)
    if filters.q:
        q = _text(filters.q, "query.q")
        qs = qs.filter(code__icontains=q) | qs.filter(name__icontains=q) | qs.filter(store__icontains=q)
    if filters.enabled is not None:
        qs = qs.filter(enabled=filters.enabled)
    if filters.online is True:
        qs = qs.filter(enabled=True, last_heartbeat_at__gte=threshold)
    elif filters.online is False:
        qs = qs.exclude(enabled=True, last_heartbeat_at__gte=threshold)
    if filters.store is not None:
        qs = qs.filter(store=_text(filters.store, "query.store"))
    rows, info = page_of(
        qs,
        sort=None,
        allowed={"code": "code"},
        default="code",
        limit=filters.limit,
        after=filters.after,
        before=filters.before,
    )
    return TerminalPage(items=[_out(t, threshold) for t in rows], page=info)


# Before "/{code}": the first route of a path decides which methods it answers.
@router.post(
    "/bulk",
    response={201: BulkCreateOut, 409: Problem, 422: Problem, **COMMON},
    summary="Create many terminals, all or nothing",
)
@idempotent
def terminal_bulk_create(request, body: BulkCreateIn):
    require(request, VIEW, MANAGE)
    rows, errors, seen = [], [], set()
    for i, item in enumerate(body.terminals):
        field = f"body.terminals.{i}"
        code = _check_code(item.code, f"{field}.code")
        if code in seen:
            errors.append((f"{field}.code", f"{code!r} appears twice in the list"))
        seen.add(code)
        rows.append((code, _text(item.name, f"{field}.name"), _text(item.store, f"{field}.store")))
    existing = set()
    for batch in chunks(sorted(seen), IN_LIST_MAX):  # each IN list within every database's limit
        existing |= set(Terminal.objects.filter(code__in=batch).values_list("code", flat=True))
    errors += [
        (f"body.terminals.{i}.code", "exists already") for i, (code, _, _) in enumerate(rows) if code in existing
    ]
    if errors:
        raise ProblemError(409, "nothing was created: see errors", errors=errors)
    actor = actor_of(request)
    try:
        with transaction.atomic():
            created = [terminal_operator_create(code=c, name=n, store=s, actor=actor) for c, n, s in rows]
    except IntegrityError as exc:
        raise ProblemError(409, "a terminal of the list was created meanwhile; nothing was created") from exc
    threshold = terminal_online_threshold(now=db_now())
    return Status(
        201, BulkCreateOut(created=[TerminalWithKey(terminal=_out(t, threshold), api_key=k) for t, k in created])
    )


# "/bulk" above takes the path for every method, so a terminal whose code is "bulk" is reached here.
@router.get("/bulk", response={200: TerminalOut, 404: Problem, **COMMON}, include_in_schema=False)
def terminal_named_bulk_get(request):
    return terminal_get(request, "bulk")


@router.patch("/bulk", response={200: TerminalOut, 404: Problem, **COMMON}, include_in_schema=False)
def terminal_named_bulk_patch(request, body: TerminalPatch):
    return terminal_patch(request, "bulk", body)


@router.get("/{code}", response={200: TerminalOut, 404: Problem, **COMMON}, summary="Get a terminal")
def terminal_get(request, code: str):
    require(request, VIEW)
    return _one(_get(code))


@router.post(
    "",
    response={201: TerminalWithKey, 409: Problem, 422: Problem, **COMMON},
    summary="Create a terminal (its key once)",
)
@idempotent
def terminal_create(request, body: TerminalIn):
    require(request, VIEW, MANAGE)
    code = _check_code(body.code, "body.code")
    if Terminal.objects.filter(code=code).exists():
        raise ProblemError(409, f"a terminal {code!r} exists already", errors=[("body.code", "exists already")])
    try:
        terminal, key = terminal_operator_create(
            code=code,
            name=_text(body.name, "body.name"),
            store=_text(body.store, "body.store"),
            actor=actor_of(request),
        )
    except IntegrityError as exc:  # created by a concurrent call between the check and the insert
        raise ProblemError(
            409, f"a terminal {code!r} exists already", errors=[("body.code", "exists already")]
        ) from exc
    return Status(201, TerminalWithKey(terminal=_one(terminal), api_key=key))


@router.patch(
    "/{code}", response={200: TerminalOut, 404: Problem, **COMMON}, summary="Change a terminal's name or store"
)
def terminal_patch(request, code: str, body: TerminalPatch):
    require(request, VIEW, MANAGE)
    terminal = _get(code)
    name = terminal.name if body.name is None else _text(body.name, "body.name")
    store = terminal.store if body.store is None else _text(body.store, "body.store")
    return _one(terminal_update(terminal=terminal, name=name, store=store, actor=actor_of(request)))


class EnabledOut(Schema):
    changed: bool
    terminal: TerminalOut


def _set_enabled(request, code: str, body: Reason, enabled: bool) -> EnabledOut:
    require(request, VIEW, MANAGE)
    terminal = _get(code)
    changed = terminal_set_enabled(
        terminal=terminal, enabled=enabled, actor=actor_of(request), reason=_text(body.reason, "body.reason")
    )
    return EnabledOut(changed=changed, terminal=_one(terminal))


@router.post(
    "/{code}/enable",
    response={200: EnabledOut, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Enable a terminal",
)
@idempotent
def terminal_enable(request, code: str, body: Reason):
    return _set_enabled(request, code, body, True)


@router.post(
    "/{code}/disable",
    response={200: EnabledOut, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Disable a terminal",
)
@idempotent
def terminal_disable(request, code: str, body: Reason):
    return _set_enabled(request, code, body, False)


@router.post(
    "/{code}/rotate-key",
    response={200: TerminalWithKey, 404: Problem, 409: Problem, 422: Problem, **COMMON},
    summary="Give a terminal a new key (once)",
)
@idempotent
def terminal_rotate_key(request, code: str, body: Reason):
    require(request, VIEW, ROTATE)
    terminal = _get(code)
    key = terminal_operator_rotate_key(
        terminal=terminal, actor=actor_of(request), reason=_text(body.reason, "body.reason")
    )
    terminal.refresh_from_db()
    return TerminalWithKey(terminal=_one(terminal), api_key=key)
