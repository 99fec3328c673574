"""Console pages for reconciliation: thin views over selectors and services.

Permissions (checked here, on the server, for every page and action):
- reconciliation.view_discrepancy: read every page (Viewers, Support, Terminal admins)
- reconciliation.run_reconciliation: "Run now" (Support, Terminal admins)
- reconciliation.request_resync: ask a terminal to resend an entity type (Support, Terminal admins)
- reconciliation.explain_discrepancy: mark a discrepancy explained (Support, Terminal admins)
- reconciliation.recount_counters: rebuild counters from the store (Terminal admins)
"""

from __future__ import annotations

import html
from urllib.parse import quote

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from reconciliation import selectors, services
from reconciliation.filtersets import DiscrepancyFilterSet, ReconciliationRunFilterSet
from reconciliation.forms import CellForm, ExplainForm, RecountForm, ResyncForm
from reconciliation.models import Discrepancy, ReconciliationRun
from reconciliation.tables import DiscrepancyTable, ReconciliationRunTable, cell_url
from syncadmin.lib.console import actor_of
from syncadmin.lib.listing import TABLE_TARGETS, ListPage
from terminals.models import Terminal

VIEW = "reconciliation.view_discrepancy"
PER_PAGE = 50
# What each heat-map letter means: css class and label for the legend.
STATES = {
    "e": ("c-eq", "equal"),
    "i": ("c-flight", "in flight only"),
    "g": ("c-gap", "real gap"),
    "s": ("c-stale", "stale report"),
    "d": ("c-drift", "counter drift (bug)"),
    "x": ("c-explained", "explained"),
    "n": ("c-none", "no report"),
}


# The reconciliation pages' filter forms aim their htmx requests at the element around the table.
TARGETS = (*TABLE_TARGETS, "table")


def _list(request, *, table, filterset, template, context):
    """The console's list recipe: ``table`` holds ``filterset.selected``, in pages of PER_PAGE."""
    listing = ListPage(request, table=table, filterset=filterset, per_page=PER_PAGE)
    return listing.render(template, context, targets=TARGETS)


# --- pages ---------------------------------------------------------------------------------------


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def matrix(request):
    run = selectors.run_latest_done(with_matrix=True)
    only_problems = request.GET.get("only") == "problems"
    prefix = request.GET.get("terminal", "").strip()
    rows, entity_types = [], []
    if run is not None and run.matrix:
        entity_types = run.matrix["entity_types"]
        explained = set(
            Discrepancy.objects.filter(run=run, explained_at__isnull=False).values_list("terminal_code", "entity_type")
        )
        base = reverse("reconciliation:cell")
        # Per entity type once: its escaped name and its link suffix.
        columns = [(e, html.escape(e), f"&amp;entity_type={quote(e, safe='')}") for e in entity_types]
        for code in run.matrix["terminals"]:
            if prefix and not code.startswith(prefix):
                continue
            row, problem = _matrix_row(code, columns, run.matrix["rows"][code], explained, base)
            if problem or not only_problems:
                rows.append(row)
    return render(
        request,
        "reconciliation/matrix.html",
        {
            "run": run,
            "rows": rows,
            "entity_types": entity_types,
            "legend": [STATES[s] for s in "eigsdxn"],
            "only_problems": only_problems,
            "prefix": prefix,
            "can_run": request.user.has_perm("reconciliation.run_reconciliation"),
            "open_count": selectors.discrepancy_open_count(),
        },
    )


def _matrix_row(code: str, columns: list[tuple], values: list, explained: set, base: str) -> tuple[str, bool]:
    """One heat-map row as HTML. Built here rather than in a template loop: 5,000 cells render
    in a few tens of milliseconds this way, against ~0.5 s through the template engine."""
    e_code = html.escape(code)
    href_code = f"{base}?terminal={quote(code, safe='')}"
    parts, problem = [f"<tr><th>{e_code}</th>"], False
    for (entity_type, e_type, href_type), value in zip(columns, values, strict=True):
        if value is None:
            parts.append('<td class="c-empty"></td>')
            continue
        state, counter, reported, in_flight, recount = value
        if state not in ("e", "n"):
            problem = True
            if (code, entity_type) in explained:
                state = "x"
        cls, meaning = STATES[state]
        title = f"{e_code} / {e_type}: {meaning}; terminal {_n(reported)}, counter {counter}"
        if state != "e":
            title += f", recount {recount}, in flight {in_flight}"
        parts.append(
            f'<td class="{cls}"><a href="{href_code}{href_type}" title="{title}">'
            f"{_label(state, counter, reported, recount)}</a></td>"
        )
    parts.append("</tr>")
    return mark_safe("".join(parts)), problem  # noqa: S308 - every value above is escaped or numeric


def _n(value) -> str:
    return "none" if value is None else str(value)


def _label(state: str, counter: int, reported, recount: int) -> str:
    if state == "d":
        return f"{counter - recount:+d}"
    if state in ("e", "n") or reported is None:
        return "&nbsp;"
    return f"{reported - counter:+d}"


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def discrepancy_list(request):
    filterset = DiscrepancyFilterSet(request.GET or None, queryset=selectors.discrepancy_current())
    return _list(
        request,
        table=DiscrepancyTable(filterset.selected),
        filterset=filterset,
        template="reconciliation/discrepancy_list.html",
        context={"run": selectors.run_latest_done()},
    )


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def run_list(request):
    filterset = ReconciliationRunFilterSet(request.GET or None, queryset=selectors.run_list())
    return _list(
        request,
        table=ReconciliationRunTable(filterset.selected),
        filterset=filterset,
        template="reconciliation/run_list.html",
        context={"can_run": request.user.has_perm("reconciliation.run_reconciliation")},
    )


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def run_detail(request, pk: int):
    run = get_object_or_404(ReconciliationRun.objects.defer("matrix"), pk=pk)
    filterset = DiscrepancyFilterSet(request.GET or None, queryset=Discrepancy.objects.filter(run=run))
    return _list(
        request,
        table=DiscrepancyTable(filterset.selected),
        filterset=filterset,
        template="reconciliation/run_detail.html",
        context={"run": run},
    )


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def cell(request):
    form = CellForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest("terminal and entity_type are required")
    code, entity_type = form.cleaned_data["terminal"], form.cleaned_data["entity_type"]
    history = selectors.cell_history(terminal_code=code, entity_type=entity_type)
    current = selectors.discrepancy_current().filter(terminal_code=code, entity_type=entity_type).first()
    return render(
        request,
        "reconciliation/cell.html",
        {
            "code": code,
            "entity_type": entity_type,
            "terminal": Terminal.objects.filter(code=code).first(),
            "state": selectors.cell_state(terminal_code=code, entity_type=entity_type),
            "current": current,
            "history": history,
            "chart": _chart(history),
            "reports": selectors.cell_reports(terminal_code=code, entity_type=entity_type),
            "recent": selectors.cell_recent_messages(terminal_code=code, entity_type=entity_type),
            # The message list's filter parameters (documented in the README, "Reconciliation").
            "messages_url": f"/messages/?terminal={quote(code, safe='')}&entity_type={quote(entity_type, safe='')}",
            "explain_form": ExplainForm(),
            "can_resync": request.user.has_perm("reconciliation.request_resync"),
            "can_explain": request.user.has_perm("reconciliation.explain_discrepancy"),
            "can_recount": request.user.has_perm("reconciliation.recount_counters"),
        },
    )


def _chart(history, width=600, height=120, pad=10) -> dict:
    """A server-rendered SVG polyline of the delta over the runs (no chart library)."""
    if not history:
        return {}
    deltas = [p.delta for p in history]
    top, bottom = max(max(deltas), 0), min(min(deltas), 0)
    span = (top - bottom) or 1
    step = (width - 2 * pad) / max(len(deltas) - 1, 1)

    def y(v):
        return pad + (top - v) * (height - 2 * pad) / span

    points = " ".join(f"{pad + i * step:.1f},{y(v):.1f}" for i, v in enumerate(deltas))
    dots = [
        {"x": f"{pad + i * step:.1f}", "y": f"{y(p.delta):.1f}", "kind": p.kind, "delta": p.delta, "run": p.run}
        for i, p in enumerate(history)
    ]
    return {
        "width": width,
        "height": height,
        "points": points,
        "zero": f"{y(0):.1f}",
        "dots": dots,
        "top": top,
        "bottom": bottom,
    }


# --- actions (POST only, CSRF-protected) -------------------------------------------------------------


def _action(permission: str):
    """A console action: POST only (CSRF-checked), logged in, and ``permission`` checked on the server."""

    def wrap(view):
        return require_POST(login_required(permission_required(permission, raise_exception=True)(view)))

    return wrap


@_action("reconciliation.run_reconciliation")
def run_now(request):
    run = services.run_request(actor=actor_of(request))
    flash.success(request, f"Reconciliation run #{run.pk} queued; refresh in a few seconds.")
    return redirect("reconciliation:runs")


@_action("reconciliation.request_resync")
def resync(request):
    form = ResyncForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("terminal and entity_type are required")
    code, entity_type = form.cleaned_data["terminal"], form.cleaned_data["entity_type"]
    terminal = Terminal.objects.filter(code=code).first()
    if terminal is None:
        raise Http404("unknown terminal")
    try:
        update = services.resync_request(
            terminal=terminal, entity_type=entity_type, actor=actor_of(request), reason=form.cleaned_data["reason"]
        )
        flash.success(request, f"Resync of {entity_type} requested from {code} (update {update.update_id}).")
    except services.ReconciliationError as exc:
        flash.error(request, str(exc))
    return redirect(cell_url(code, entity_type))


@_action("reconciliation.recount_counters")
def recount(request):
    form = RecountForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("invalid terminal or entity type")
    code, entity_type = form.cleaned_data["terminal"] or None, form.cleaned_data["entity_type"] or None
    changes = services.counter_rebuild(
        actor=actor_of(request), terminal_code=code, entity_type=entity_type, reason=form.cleaned_data["reason"]
    )
    if changes:
        detail = ", ".join(f"{t}/{e}: {old} → {new}" for (t, e), (old, new) in sorted(changes.items())[:10])
        flash.warning(request, f"Recount changed {len(changes)} counter(s): {detail}")
    else:
        flash.success(request, "Recount done: every counter already matched the store.")
    if code and entity_type:
        return redirect(cell_url(code, entity_type))
    return redirect("reconciliation:matrix")


@_action("reconciliation.explain_discrepancy")
def explain(request, pk: int):
    discrepancy = get_object_or_404(Discrepancy, pk=pk)
    form = ExplainForm(request.POST)
    if not form.is_valid():
        flash.error(request, "A note is required to mark a discrepancy as explained.")
    else:
        try:
            services.discrepancy_explain(
                discrepancy=discrepancy, actor=actor_of(request), note=form.cleaned_data["note"]
            )
            flash.success(request, "Marked as explained.")
        except services.ReconciliationError as exc:
            flash.error(request, str(exc))
    return redirect(cell_url(discrepancy.terminal_code, discrepancy.entity_type))
