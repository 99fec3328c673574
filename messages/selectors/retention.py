"""Reads for the retention purge: its runs, and what they removed."""

from __future__ import annotations

from django.db.models import Count, Sum

from messages.models import PurgeRun


def purge_run_list_queryset():
    return PurgeRun.objects.order_by("-started_at", "-pk")


def purge_totals(*, since) -> dict:
    """Rows removed by the purge runs since ``since`` (the retention page's summary)."""
    return PurgeRun.objects.filter(started_at__gte=since).aggregate(
        runs=Count("pk"),
        messages=Sum("messages_removed"),
        events=Sum("events_removed"),
        dead_letters=Sum("deadletters_removed"),
    )
