"""The message list: filters, keyset pages, the lazy match count and the CSV export."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from messages import selectors
from messages.filtersets import message_filterset
from messages.models import VIEW_PERM, MessageState
from messages.selectors import triage as triage_selectors
from messages.tables import MessageTable
from syncadmin.lib.console import console_view
from syncadmin.lib.exports import csv_response
from syncadmin.lib.listing import Keyset, ListPage
from terminals.selectors import terminal_codes


def filter_query(request) -> str:
    """The active filters as a query string (no cursor, no sort): what "all matching" means."""
    q = request.GET.copy()
    for key in ("after", "before", "sort"):
        q.pop(key, None)
    return q.urlencode()


@require_GET
@console_view(VIEW_PERM)
def message_list(request):
    # An invalid filter shows nothing (not everything) and says why; the operator's input stays on screen.
    listing = ListPage(
        request,
        table=MessageTable,
        table_kwargs={"orderable": False},
        filterset=message_filterset(request.GET),
        keyset=Keyset(selectors.MESSAGE_SORTS, "-received_at"),
    )
    context = {
        "filter_query": filter_query(request),
        "list_url": request.path,
        "bulk": True,
        "save_view": True,  # the save-view form takes the filters from the table (htmx/table.html)
        "row_template": "messages/_message_rows.html",
        "state_choices": MessageState.choices,
        "terminal_codes": [] if request.htmx else terminal_codes(),
        "refresh_event": "messagesChanged",
        # The page's dead letters a retry could not change (issue 20): badged "superseded".
        "superseded": triage_selectors.message_superseded_sequences(
            message_ids=[m.pk for m in listing.page.rows if m.state == MessageState.DEAD_LETTERED]
        ),
        "count_url": reverse("message-count") + "?" + filter_query(request),
        "export_url": reverse("message-export") + "?" + filter_query(request),
    }
    return listing.render("messages/message_list.html", context)


@require_GET
@console_view(VIEW_PERM)
def message_count(request):
    """How many messages match, counted up to a cap (loaded lazily so the table never waits)."""
    fs = message_filterset(request.GET)
    if not fs.is_valid():
        return HttpResponse("filters not valid")
    cap = 10_000
    n, more = selectors.message_count_capped(queryset=fs.qs, cap=cap)
    text = f"more than {cap:,} match" if more else f"{n:,} match" if n != 1 else "1 matches"
    return HttpResponse(text)


@never_cache  # the messages' keys and errors, as a file: never stored by a browser or a proxy
@require_GET
@console_view(VIEW_PERM)
def message_export(request):
    """The filtered list as CSV, streamed row by row: a million rows never sit in memory."""
    fs = message_filterset(request.GET)
    if not fs.is_valid():
        return HttpResponse("Invalid filters: " + fs.errors.as_text(), status=400, content_type="text/plain")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return csv_response(
        header=[name for name, _ in selectors.MESSAGE_EXPORT_COLUMNS],
        rows=selectors.message_export_rows(queryset=fs.qs),
        filename=f"messages-{stamp}.csv",
    )
