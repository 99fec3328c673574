"""Operator actions on messages, driven from the console: each one changes state through the
engine's services (message_retry / message_discard / message_restore / message_transition) and
leaves an audit entry: who did it, why, and on what selection.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from messages.models import DeadLetter, DeadLetterGroupEvent, DeadLetterGroupNote, Message, MessageState
from messages.services.operator import message_discard, message_restore, message_retry
from messages.services.transitions import message_transition
from messages.services.wakeup import wake_workers
from syncadmin.lib.clock import db_now
from syncadmin.lib.jsontext import json_parse
from syncadmin.services import audit_record


class ActionRefused(Exception):
    """An operator action that cannot be done as asked; the message says why, nothing changed.

    ``field`` names the input at fault (``reason``, ``payload``); None when the message's state refuses it.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def operator_action_audit(
    *, action: str, ids: list[int], changed: int, actor: str, reason: str, detail: dict | None = None
):
    """One audit entry for an operator action on one message or a selection (ids kept up to 100)."""
    return audit_record(
        actor=actor,
        action=action,
        object_type="message",
        object_id=str(ids[0]) if len(ids) == 1 else "",
        count=changed,
        reason=reason,
        detail={**(detail or {}), "selected": len(ids), **({"ids": ids} if len(ids) <= 100 else {})},
    )


def _audited(service, action: str, *, message_ids: Iterable[int], actor: str, reason: str, detail: dict | None):
    """Run an engine service on a selection, then write its one audit entry; how many changed."""
    ids = list(message_ids)
    changed = service(message_ids=ids, actor=actor, reason=reason)
    operator_action_audit(action=action, ids=ids, changed=changed, actor=actor, reason=reason, detail=detail)
    return changed


def message_operator_retry(
    *, message_ids: Iterable[int], actor: str, reason: str = "", detail: dict | None = None
) -> int:
    """Retry (Failed/DeadLettered -> Received) and audit it; returns how many messages changed."""
    reason = reason or "retried from the console"
    return _audited(message_retry, "message.retry", message_ids=message_ids, actor=actor, reason=reason, detail=detail)


def message_operator_discard(*, message_ids: Iterable[int], actor: str, reason: str, detail: dict | None = None) -> int:
    """Discard (Received/Failed/DeadLettered -> Discarded) with a required reason, and audit it."""
    if not reason or not reason.strip():
        raise ActionRefused("a reason is required to discard messages", field="reason")
    return _audited(
        message_discard, "message.discard", message_ids=message_ids, actor=actor, reason=reason.strip(), detail=detail
    )


def message_operator_restore(
    *, message_ids: Iterable[int], actor: str, reason: str = "", detail: dict | None = None
) -> int:
    """Restore (Discarded -> Received) from the console and audit it; returns how many changed."""
    reason = reason or "restored from the console"
    return _audited(
        message_restore, "message.restore", message_ids=message_ids, actor=actor, reason=reason, detail=detail
    )


def message_edit_and_retry(*, message_id: int, payload: str, actor: str, reason: str) -> Message:
    """Replace a dead-lettered message's payload and send it round again.

    The original payload is kept twice: in the MessageEvent of this transition (its reason) and in
    the audit entry's detail, so the edit can always be reviewed and undone by hand.
    """
    if not reason or not reason.strip():
        raise ActionRefused("a reason is required to edit a payload", field="reason")
    try:
        json_parse(payload)
    except ValueError as exc:
        raise ActionRefused(f"the new payload is not valid JSON: {exc}", field="payload") from exc
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if message.state != MessageState.DEAD_LETTERED:
            raise ActionRefused(f"only a dead-lettered message can be edited (this one is {message.state})")
        original = message.payload
        now = db_now()
        message_transition(
            message_ids=[message.pk],
            from_state=MessageState.DEAD_LETTERED,
            to_state=MessageState.RECEIVED,
            actor=actor,
            reason=f"payload edited and retried: {reason.strip()}\n--- original payload ---\n{original}",
            fields={
                "payload": payload,
                "attempts": 0,
                "next_attempt_at": now,
                "lease_owner": "",
                "lease_expires_at": None,
            },
            now=now,
        )
        DeadLetter.objects.filter(message=message, resolution="").update(
            resolution=DeadLetter.Resolution.RETRIED, resolved_by=actor[:150], resolved_at=now, note=reason.strip()
        )
        audit_record(
            actor=actor,
            action="message.edit_payload",
            object_type="message",
            object_id=str(message.pk),
            reason=reason.strip(),
            detail={"original_payload": original, "new_payload": payload},
        )
        transaction.on_commit(wake_workers)
    message.refresh_from_db()
    return message


def deadletter_group_note_set(*, grouping: str, key: str, note: str, actor: str):
    """Write (or clear) the operator note on a dead-letter group, and audit the change (and the group's history)."""
    with transaction.atomic():
        old = DeadLetterGroupNote.objects.select_for_update().filter(grouping=grouping, key=key[:255]).first()
        obj, _ = DeadLetterGroupNote.objects.update_or_create(
            grouping=grouping, key=key[:255], defaults={"note": note.strip(), "updated_by": actor[:150]}
        )
        before = old.note if old else ""
        if before != obj.note:
            DeadLetterGroupEvent.objects.create(
                grouping=grouping, key=obj.key, kind=DeadLetterGroupEvent.Kind.TRIAGE, at=db_now(), actor=actor[:150],
                from_status=obj.status, to_status=obj.status, detail=f"note: {before or '–'} → {obj.note or '–'}",
            )  # fmt: skip
    audit_record(
        actor=actor,
        action="deadletter.note",
        object_type=f"deadletter_group:{grouping}",
        object_id=key,
        count=0,
        reason=note.strip(),
    )
    return obj
