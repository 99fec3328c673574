"""The retention page: the purge's settings and its runs."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.views.decorators.http import require_GET

from messages.selectors import retention as selectors
from messages.tables import PurgeRunTable
from syncadmin.lib.console import console_view
from syncadmin.lib.listing import Keyset, ListPage

VIEW_PURGES = "queue_messages.view_purgerun"


@require_GET
@console_view(VIEW_PURGES)
def retention(request):
    runs = selectors.purge_run_list_queryset()
    listing = ListPage(request, table=PurgeRunTable, rows=runs, keyset=Keyset.newest_first("started_at"))
    context = {
        "retention_days": settings.SYNC_RETENTION_DAYS,
        "deadletter_days": settings.SYNC_DEADLETTER_RETENTION_DAYS,
        "batch": settings.SYNC_RETENTION_BATCH,
        "interval": settings.SYNC_RETENTION_INTERVAL_MINUTES,
        "last_day": selectors.purge_totals(since=timezone.now() - timedelta(days=1)),
    }
    return listing.render("messages/retention.html", context)
