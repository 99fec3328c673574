"""django-q2 tasks of the API: thin wrappers (scheduled by SyncAdminConfig.schedules)."""

from syncadmin.services import api_call_windows_purge, idempotency_purge


def idempotency_records_purge() -> int:
    """Every hour: forget the Idempotency-Key answers that have expired."""
    return idempotency_purge()


def api_call_windows_forget() -> int:
    """Every hour: forget the rate windows that ended more than a day ago."""
    return api_call_windows_purge()
