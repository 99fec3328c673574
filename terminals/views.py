"""Console pages for terminals: list, create, edit, enable/disable, rotate key, detail."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from messages.selectors import message_counts_for_terminals, message_list_queryset, message_pending_updates
from messages.tables import MessageTable
from reconciliation.selectors import terminal_latest_reported_counts
from reconciliation.terminal_health import terminal_health
from syncadmin.lib.clock import db_now
from syncadmin.lib.console import actor_of, console_view
from syncadmin.lib.listing import ListPage
from terminals.filtersets import TerminalFilterSet
from terminals.forms import ReasonForm, TerminalCreateForm, TerminalEditForm
from terminals.models import Terminal
from terminals.selectors import terminal_list_queryset, terminal_online_threshold
from terminals.services_console import (
    STORE_HOURS,
    terminal_operator_create,
    terminal_operator_rotate_key,
    terminal_set_enabled,
    terminal_update,
)
from terminals.tables import TerminalTable

VIEW = "terminals.view_terminal"
MANAGE = "terminals.manage_terminal"
ROTATE = "terminals.rotate_key"
STATUSES = [("", "Any status"), ("online", "Online"), ("offline", "Offline"), ("disabled", "Disabled")]


@require_GET
@console_view(VIEW)
def terminal_list(request):
    now = db_now()
    status = request.GET.get("status", "")
    notices = []
    if status not in dict(STATUSES):
        notices.append(f"unknown status {status[:40]!r}; showing every status")
        status = ""
    fs = TerminalFilterSet(request.GET, queryset=terminal_list_queryset(status=status, now=now))
    threshold = terminal_online_threshold(now=now)
    listing = ListPage(
        request,
        table=TerminalTable(fs.selected, threshold=threshold),
        filterset=fs,
        per_page=settings.CONSOLE_PAGE_SIZE,
        notices=notices,
    )
    # Scores and counts only for the terminals on this page, not one query per row: the backlog and
    # the dead letters are the health score's own counts.
    table = listing.table
    page_ids = [row.record.pk for row in table.page.object_list]
    table.healths = terminal_health(terminal_ids=page_ids)
    table.counts = {pk: {"backlog": h.backlog, "dead": h.dead_letters} for pk, h in table.healths.items()}
    context = {
        "statuses": STATUSES,
        "status": status,
        "offline_seconds": settings.TERMINAL_OFFLINE_SECONDS,
        "threshold": threshold,
        "row_template": "terminals/_terminal_rows.html",
    }
    return listing.render("terminals/terminal_list.html", context)


@never_cache
@console_view(VIEW, MANAGE)
def terminal_create_view(request):
    form = TerminalCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        terminal, key = terminal_operator_create(
            code=form.cleaned_data["code"],
            name=form.cleaned_data["name"],
            store=form.cleaned_data["store"],
            actor=actor_of(request),
        )
        # The key is shown on this response only: it is stored hashed and never again readable.
        return render(request, "terminals/key_shown.html", {"terminal": terminal, "key": key, "created": True})
    return render(
        request, "terminals/terminal_form.html", {"form": form, "creating": True}, status=400 if form.errors else 200
    )


@console_view(VIEW, MANAGE)
def terminal_edit_view(request, pk: int):
    terminal = get_object_or_404(Terminal, pk=pk)
    initial = {f: getattr(terminal, f) for f in ("name", "store", *STORE_HOURS)}
    form = TerminalEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        terminal_update(
            terminal=terminal, name=data["name"], store=data["store"], actor=actor_of(request),
            hours={f: data[f] for f in STORE_HOURS},
        )  # fmt: skip
        return redirect("terminal-detail", pk=pk)
    return render(
        request,
        "terminals/terminal_form.html",
        {"form": form, "terminal": terminal},
        status=400 if form.errors else 200,
    )


@require_POST
@console_view(VIEW, MANAGE)
def terminal_toggle_view(request, pk: int):
    terminal = get_object_or_404(Terminal, pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():  # never act with the operator's reason silently dropped
        return HttpResponseBadRequest("The reason is not valid: " + form.errors.as_text(), content_type="text/plain")
    reason = form.cleaned_data["reason"]
    enable = request.POST.get("enabled") == "1"
    terminal_set_enabled(terminal=terminal, enabled=enable, actor=actor_of(request), reason=reason)
    if request.htmx:
        return render(request, "terminals/_terminal_header.html", _detail_context(terminal))
    return redirect("terminal-detail", pk=pk)


@never_cache
@require_POST
@console_view(VIEW, ROTATE)
def terminal_rotate_view(request, pk: int):
    terminal = get_object_or_404(Terminal, pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():  # never act with the operator's reason silently dropped
        return HttpResponseBadRequest("The reason is not valid: " + form.errors.as_text(), content_type="text/plain")
    reason = form.cleaned_data["reason"]
    key = terminal_operator_rotate_key(terminal=terminal, actor=actor_of(request), reason=reason)
    if request.htmx:
        # The key panel, plus the header again out of band so "Key rotated" shows the new time.
        return render(request, "terminals/_key_panel.html", {**_detail_context(terminal), "key": key, "oob": True})
    return render(request, "terminals/key_shown.html", {"terminal": terminal, "key": key})


def _detail_context(terminal: Terminal) -> dict:
    now = db_now()
    online = bool(
        terminal.enabled
        and terminal.last_heartbeat_at
        and terminal.last_heartbeat_at >= terminal_online_threshold(now=now)
    )
    return {"terminal": terminal, "online": online, "now": now}


@require_GET
@console_view(VIEW)
def terminal_detail(request, pk: int):
    terminal = get_object_or_404(Terminal, pk=pk)
    recent = list(message_list_queryset().filter(terminal=terminal).order_by("-received_at", "-pk")[:25])
    counts = message_counts_for_terminals(terminal_ids=[terminal.pk])[terminal.pk]
    context = {
        **_detail_context(terminal),
        "messages_table": MessageTable(recent, orderable=False, exclude=("select", "terminal")),
        "updates": message_pending_updates(terminal=terminal),
        "reported": terminal_latest_reported_counts(terminal=terminal),
        "counts": counts,
    }
    return render(request, "terminals/terminal_detail.html", context)
