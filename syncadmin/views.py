"""Console pages that belong to the hub as a whole: the dashboard and the audit log."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET

from messages.models import MessageState
from syncadmin import selectors
from syncadmin.charts import Series, line_chart
from syncadmin.console import console_view, render_list, wants_fragment
from syncadmin.filtersets import AuditEntryFilterSet
from syncadmin.pagination import keyset_page
from syncadmin.tables import AuditEntryTable

WINDOWS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}


def _charts(now, window: str) -> list[dict]:
    samples = selectors.metric_samples(since=now - WINDOWS[window])
    if len(samples) < 2:
        return []
    return [
        {
            "title": "Backlog (Received + Failed)",
            "last": samples[-1].backlog,
            "svg": line_chart(Series("Backlog", "c-backlog", [(s.at, s.backlog) for s in samples])),
        },
        {
            "title": "Processed per minute",
            "last": samples[-1].processed_last_minute,
            "svg": line_chart(Series("Throughput", "c-throughput", [(s.at, s.processed_last_minute) for s in samples])),
        },
    ]


@require_GET
@console_view("queue_messages.view_message")
def dashboard(request):
    window = request.GET.get("window", "6h")
    if window not in WINDOWS:
        window = "6h"
    summary = selectors.dashboard_summary()
    context = {
        "d": summary,
        "states": [(s, summary.states.get(s, 0), s in summary.estimated_states) for s in MessageState.values],
        "charts": _charts(summary.now, window),
        "window": window,
        "windows": list(WINDOWS),
        "refresh_seconds": settings.CONSOLE_REFRESH_SECONDS,
        "offline_seconds": settings.TERMINAL_OFFLINE_SECONDS,
    }
    template = "syncadmin/_dashboard_body.html" if wants_fragment(request) else "syncadmin/dashboard.html"
    return render(request, template, context)


@require_GET
@console_view("syncadmin.view_auditentry")
def audit_list(request):
    fs = AuditEntryFilterSet(request.GET, queryset=selectors.audit_entry_queryset())
    page = keyset_page(
        fs.selected,
        sort="-at",
        allowed={"at": "at"},
        default="-at",
        per_page=settings.CONSOLE_PAGE_SIZE,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )
    notice = "; ".join(n for n in (fs.notice, page.notice) if n)
    context = {"filter": fs, "table": AuditEntryTable(page.rows), "page": page, "notice": notice}
    return render_list(request, "syncadmin/audit_list.html", context)
