"""Writes that belong to the console as a whole."""

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


def deadletter_group_note_set(*, grouping: str, key: str, note: str, actor: str):
    """Write (or clear) the operator note on a dead-letter group, and audit the change."""
    from syncadmin.models import DeadLetterGroupNote

    obj, _ = DeadLetterGroupNote.objects.update_or_create(
        grouping=grouping, key=key[:255], defaults={"note": note.strip(), "updated_by": actor[:150]}
    )
    audit_record(
        actor=actor,
        action="deadletter.note",
        object_type=f"deadletter_group:{grouping}",
        object_id=key,
        count=0,
        reason=note.strip(),
    )
    return obj
