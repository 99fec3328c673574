"""The database's clock: leases, backoff, event times and ages are read from it, never from a process."""

from __future__ import annotations

from datetime import datetime

from django.db import connections
from django.utils import timezone

from syncadmin.lib.sql import per_vendor


@per_vendor
def db_now(using: str = "default") -> datetime:
    """The database's clock: leases and backoff must not depend on a worker's own clock."""
    return _read_clock(using, "SELECT CURRENT_TIMESTAMP")


@db_now.vendor("sqlite")
def _db_now_sqlite(using: str = "default") -> datetime:
    # SQLite is a file on this machine: its clock is this machine's clock.
    return timezone.now()


@db_now.vendor("postgresql")
def _db_now_postgresql(using: str = "default") -> datetime:
    return _read_clock(using, "SELECT clock_timestamp()")


@db_now.vendor("oracle")
def _db_now_oracle(using: str = "default") -> datetime:
    return _read_clock(using, "SELECT SYSTIMESTAMP FROM DUAL")


def _read_clock(using: str, sql: str) -> datetime:
    with connections[using].cursor() as cursor:
        cursor.execute(sql)
        value = cursor.fetchone()[0]
    return timezone.make_aware(value, timezone.utc) if value.tzinfo is None else value
