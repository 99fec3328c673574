"""django-q2 task of the API: a thin wrapper (scheduled by SyncAdminConfig.schedules)."""

from syncadmin.services import idempotency_purge


def idempotency_records_purge() -> int:
    """Every hour: forget the Idempotency-Key answers that have expired."""
    return idempotency_purge()
