"""Reads of the ground's own tables: metric history, the worker cluster's last sample, the audit log, API tokens."""

from __future__ import annotations

from datetime import datetime

from syncadmin.models import ApiToken, AuditEntry, MetricSample


def metric_samples(*, since: datetime, limit: int = 1440) -> list[MetricSample]:
    """The once-a-minute samples since ``since``, oldest first (at most ``limit``)."""
    return list(MetricSample.objects.filter(at__gte=since).order_by("-at")[:limit])[::-1]


def last_sample_at() -> datetime | None:
    """When the worker cluster last wrote its once-a-minute sample (its heartbeat for /healthz)."""
    return MetricSample.objects.order_by("-at").values_list("at", flat=True).first()


def audit_entry_queryset():
    return AuditEntry.objects.all()


def api_tokens_of(*, user) -> list:
    """``user``'s API tokens, newest first (revoked ones included: the list says so)."""
    return list(ApiToken.objects.filter(user=user).order_by("-created_at", "-pk"))
