"""/healthz checks: database reachable, worker cluster alive, backlog not overdue.

The worker check needs proof that the cluster actually runs tasks, not only that a process
exists: the once-a-minute sample (a scheduled task run by a worker) must be recent. When
django-q2's cluster statistics are visible from here (Redis broker, or a shared cache), a
running cluster must also be listed, so a stopped cluster shows within seconds instead of
after SYNC_HEALTHZ_WORKER_STALE_SECONDS.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connection, connections
from django_q.conf import Conf
from django_q.status import Stat

from messages.selectors import message_backlog_ages
from syncadmin.lib.clock import db_now
from syncadmin.lib.sql import per_vendor
from syncadmin.selectors import last_sample_at

log = logging.getLogger(__name__)

RUNNING = ("Starting", "Working", "Idle")

# The answer this process last gave, per scope: an outage is logged when it starts and ends.
_last_healthy: dict[str, bool] = {}
_last_healthy_lock = threading.Lock()


def _check_database() -> dict:
    try:
        _select_one(connection.alias)
        return {"ok": True}
    except Exception as exc:  # any failure here means "not reachable"; never a traceback page
        log.warning("healthz: database unreachable: %s", exc)
        return {"ok": False, "error": type(exc).__name__}


@per_vendor
def _select_one(using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@_select_one.vendor("oracle")
def _select_one_oracle(using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1 FROM DUAL")
        cursor.fetchone()


def cluster_stats_visible() -> bool:
    """Can this process see django-q2's cluster statistics (shared broker or cache)?"""
    if settings.Q_CLUSTER.get("redis"):
        return True
    backend = settings.CACHES.get(Conf.CACHE, {}).get("BACKEND", "")
    return not backend.endswith(("LocMemCache", "DummyCache"))


def _running_clusters() -> list[dict]:
    return [
        {"host": s.host, "status": str(s.status)} for s in Stat.get_all() if str(getattr(s, "status", "")) in RUNNING
    ]


def _check_workers(now) -> dict:
    stale = settings.SYNC_HEALTHZ_WORKER_STALE_SECONDS
    at = last_sample_at()
    age = None if at is None else max((now - at).total_seconds(), 0.0)
    result = {"ok": age is not None and age <= stale, "last_sample_age_seconds": age, "max_age_seconds": stale}
    if cluster_stats_visible():
        try:
            clusters = _running_clusters()
        except Exception as exc:  # broker unreachable: the workers cannot be fed either
            log.warning("healthz: cannot read cluster statistics: %s", exc)
            clusters = []
            result["error"] = type(exc).__name__
        result["clusters"] = clusters
        result["ok"] = result["ok"] and bool(clusters)
    return result


def _check_backlog(now) -> dict:
    limit = settings.SYNC_HEALTHZ_BACKLOG_OVERDUE_SECONDS
    due = message_backlog_ages()["oldest_due_at"]
    overdue = 0.0 if due is None else max((now - due).total_seconds(), 0.0)
    return {"ok": overdue <= limit, "overdue_seconds": round(overdue, 3), "max_overdue_seconds": limit}


def health_check(*, scope: str = "all") -> tuple[bool, dict]:
    """(healthy, body). scope='web' checks the database only (for a web load balancer)."""
    checks = {"database": _check_database()}
    if scope != "web":
        if checks["database"]["ok"]:
            now = db_now()
            checks["workers"] = _check_workers(now)
            checks["backlog"] = _check_backlog(now)
        else:
            checks["workers"] = checks["backlog"] = {"ok": False, "error": "database unreachable"}
    healthy = all(c["ok"] for c in checks.values())
    return healthy, {"status": "healthy" if healthy else "unhealthy", "checks": checks}


def health_change_log(*, scope: str, healthy: bool, checks: dict) -> None:
    """One WARNING when this process's answer for ``scope`` changes, not one line a poll.

    A load balancer polls /healthz every few seconds; Django's ERROR line for each 503 is
    filtered out (syncadmin.lib.logs.HealthPollFilter), and this says instead when
    the hub became unhealthy (with the failing checks) and when it recovered. A process that
    starts unhealthy says so on its first answer. Each web process keeps its own memory, so an
    outage is logged once per gunicorn worker that answers a poll during it.
    """
    with _last_healthy_lock:
        previous = _last_healthy.get(scope)
        _last_healthy[scope] = healthy
    if previous == healthy or (previous is None and healthy):
        return
    if healthy:
        log.warning("healthz: healthy again (scope=%s)", scope)
    else:
        failing = {name: check for name, check in checks.items() if not check["ok"]}
        log.warning("healthz: unhealthy (scope=%s): %s", scope, failing)
