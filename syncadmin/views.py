"""Console pages of the hub as a whole: the dashboard (figures from every app), the audit log, the user's API tokens."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from messages.models import MessageState
from syncadmin import selectors
from syncadmin.dashboard import dashboard_summary
from syncadmin.filtersets import AuditEntryFilterSet
from syncadmin.forms import ApiTokenForm
from syncadmin.lib.charts import Series, line_chart
from syncadmin.lib.console import actor_of, console_view, wants_fragment
from syncadmin.lib.listing import Keyset, ListPage
from syncadmin.models import ApiToken
from syncadmin.services import api_token_create, api_token_revoke
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
    summary = dashboard_summary()
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
    listing = ListPage(
        request,
        table=AuditEntryTable,
        filterset=AuditEntryFilterSet(request.GET, queryset=selectors.audit_entry_queryset()),
        keyset=Keyset.newest_first("at"),
    )
    return listing.render("syncadmin/audit_list.html")


# Any logged-in user may hold tokens: a token can do only what its user may do in the console.
@never_cache  # the answer to a POST holds the new token
@console_view()
def api_tokens(request):
    """The user's API tokens; a POST makes one and shows it on this answer only (it is stored hashed)."""
    form = ApiTokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        expires_at = timezone.now() + timedelta(days=days) if days else None
        _, secret = api_token_create(user=request.user, name=form.cleaned_data["name"], expires_at=expires_at)
        form = ApiTokenForm()
    context = {
        "tokens": selectors.api_tokens_of(user=request.user),
        "form": form,
        "secret": secret,
        "now": timezone.now(),
    }
    status = 400 if form.errors else 200
    return render(request, "syncadmin/api_tokens.html", context, status=status)


@require_POST
@console_view()
def api_token_revoke_view(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)  # someone else's token: 404, as if absent
    api_token_revoke(token=token, actor=actor_of(request))
    return redirect("api-tokens")
