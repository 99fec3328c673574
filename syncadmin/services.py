"""Writes of the ground's own tables: the audit log."""

from __future__ import annotations

from syncadmin.models import AuditEntry


def audit_record(
    *,
    actor: str,
    action: str,
    object_type: str = "",
    object_id: str = "",
    count: int = 1,
    reason: str = "",
    detail: dict | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor[:150],
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:255],
        count=count,
        reason=reason,
        detail=detail or {},
    )
