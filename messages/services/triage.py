"""Failure-group triage and superseded dead letters (issue 20): writes.

- ``deadletter_group_triage_set`` / ``deadletter_group_take``: a group's owner, status, ticket and
  note; each change leaves a DeadLetterGroupEvent and an audit entry.
- ``deadletter_group_recur``: called by message_dead_letter in the dead letter's own transaction; a
  dead letter landing in a closed group (fixed, or none of its dead letters open any more) sets it
  back to new, compare-and-set on the status it had, with a "recurred" event.
- ``deadletter_superseded_discard``: discards, through the operator discard, only those of a selection
  that are still superseded once their rows are locked (one audit entry for the whole).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q

from messages.models import DeadLetter, DeadLetterGroupEvent, DeadLetterGroupNote, Message, MessageState, TriageStatus
from messages.selectors.triage import GROUP_FIELDS, message_superseded_sequences
from messages.services.console import ActionRefused, operator_action_audit
from messages.services.operator import message_discard
from syncadmin.lib.clock import db_now
from syncadmin.lib.sql import chunks
from syncadmin.services import audit_record

_TICKET = URLValidator(schemes=["http", "https"])
# What the triage form may change, and how a change is named in the history.
TRIAGE_FIELDS = {"status": "status", "owner": "owner", "ticket_url": "ticket", "note": "note"}


def _clean(field: str, value: str) -> str:
    value = (value or "").strip()
    if field == "status" and value not in TriageStatus.values:
        raise ActionRefused(f"unknown status {value!r}", field="status")
    if field == "ticket_url" and value:
        try:
            _TICKET(value)
        except ValidationError as exc:
            raise ActionRefused("the ticket link must be an http:// or https:// URL", field="ticket_url") from exc
    return value[:500] if field == "ticket_url" else value[:150] if field == "owner" else value


def deadletter_group_triage_set(*, grouping: str, key: str, actor: str, **changes: str) -> DeadLetterGroupNote:
    """Change any of status, owner, ticket_url and note of a group's triage; history + audit when anything changed.

    A value left out (or None) stays as it is. ActionRefused (nothing written) for a bad status or link.
    """
    if grouping not in GROUP_FIELDS:
        raise ActionRefused(f"unknown grouping {grouping!r}", field="grouping")
    unknown = set(changes) - set(TRIAGE_FIELDS)
    if unknown:
        raise ActionRefused(f"cannot change {', '.join(sorted(unknown))}")
    wanted = {f: _clean(f, v) for f, v in changes.items() if v is not None}
    with transaction.atomic():
        triage, _ = DeadLetterGroupNote.objects.select_for_update().get_or_create(grouping=grouping, key=key[:255])
        before = {f: getattr(triage, f) for f in TRIAGE_FIELDS}
        diff = {f: (before[f], v) for f, v in wanted.items() if before[f] != v}
        if not diff:
            return triage
        for f, (_, v) in diff.items():
            setattr(triage, f, v)
        triage.updated_by = actor[:150]
        triage.save()
        detail = "; ".join(f"{TRIAGE_FIELDS[f]}: {old or '–'} → {new or '–'}" for f, (old, new) in diff.items())
        DeadLetterGroupEvent.objects.create(
            grouping=grouping, key=triage.key, kind=DeadLetterGroupEvent.Kind.TRIAGE, at=db_now(), actor=actor[:150],
            from_status=before["status"], to_status=triage.status, detail=detail,
        )  # fmt: skip
        audit_record(
            actor=actor,
            action="deadletter.triage",
            object_type=f"deadletter_group:{grouping}",
            object_id=key,
            count=0,
            reason=detail,
            detail={f: {"from": old, "to": new} for f, (old, new) in diff.items()},
        )
    return triage


def deadletter_group_take(*, grouping: str, key: str, actor: str, username: str) -> DeadLetterGroupNote:
    """Take it: ``username`` owns the group; a new group is then under investigation."""
    current = DeadLetterGroupNote.objects.filter(grouping=grouping, key=key).values_list("status", flat=True).first()
    status = TriageStatus.INVESTIGATING if current in (None, TriageStatus.NEW) else None
    return deadletter_group_triage_set(grouping=grouping, key=key, actor=actor, owner=username, status=status)


def deadletter_group_recur(*, message: Message, group_key: str, actor: str, now) -> int:
    """A dead letter has just landed: send each closed group it falls in back to new; how many recurred.

    Runs in the dead letter's transaction. "Closed": status fixed, or (any status but new) no other
    open dead letter in the group. Compare-and-set on the status read, so two workers dead-lettering
    into the same group at once write one "recurred" event.
    """
    code = Message.objects.filter(pk=message.pk).values("terminal__code")
    wanted = (
        Q(grouping="reason", key=group_key)
        | Q(grouping="terminal", key__in=code)
        | Q(grouping="entity", key=message.entity_type)
    )
    recurred = 0
    for triage in DeadLetterGroupNote.objects.filter(wanted).exclude(status=TriageStatus.NEW):
        others = (
            DeadLetter.objects.filter(resolution="", **{GROUP_FIELDS[triage.grouping]: triage.key})
            .exclude(message_id=message.pk)
            .exists()
        )
        if triage.status != TriageStatus.FIXED and others:
            continue
        if not DeadLetterGroupNote.objects.filter(pk=triage.pk, status=triage.status).update(
            status=TriageStatus.NEW, updated_by=actor[:150], updated_at=now
        ):
            continue  # someone else changed it first
        DeadLetterGroupEvent.objects.create(
            grouping=triage.grouping, key=triage.key, kind=DeadLetterGroupEvent.Kind.RECURRED, at=now,
            actor=actor[:150], from_status=triage.status, to_status=TriageStatus.NEW,
            detail=f"message {message.pk} dead-lettered after the group was {triage.get_status_display().lower()}"
            + ("" if others else " with no dead letter open"),
        )  # fmt: skip
        recurred += 1
    return recurred


@dataclass
class SupersededOutcome:
    candidates: int  # dead-lettered messages examined
    superseded: int  # of those, superseded when locked
    discarded: int


def superseded_reason(sequences: dict[int, int]) -> str:
    """The reason a discard of superseded dead letters is given, filled in for the operator."""
    if not sequences:
        return "superseded: the entity already holds a newer sequence from the same terminal"
    low, high = min(sequences.values()), max(sequences.values())
    at = f"sequence {low}" if low == high else f"sequences {low}–{high}"
    return f"superseded: the entity already holds {at} from the same terminal; a retry would change nothing"


def deadletter_superseded_discard(
    *, message_ids: Iterable[int], actor: str, reason: str, detail: dict | None = None
) -> SupersededOutcome:
    """Discard those of ``message_ids`` that are dead-lettered and superseded, rechecked under their row locks.

    A message retried (or edited) since the operator counted is no longer DeadLettered and is left
    alone. Restorable like any discard; one audit entry ("message.discard", superseded=True).
    """
    if not reason or not reason.strip():
        raise ActionRefused("a reason is required to discard messages", field="reason")
    reason = reason.strip()
    ids = sorted(set(message_ids))
    outcome = SupersededOutcome(0, 0, 0)
    discarded_ids: list[int] = []
    for chunk in chunks(ids):
        with transaction.atomic():
            locked = list(
                Message.objects.select_for_update()
                .filter(pk__in=chunk, state=MessageState.DEAD_LETTERED)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            superseded = sorted(message_superseded_sequences(message_ids=locked))
            outcome.candidates += len(locked)
            outcome.superseded += len(superseded)
            if superseded:
                outcome.discarded += message_discard(message_ids=superseded, actor=actor, reason=reason)
                discarded_ids += superseded
    operator_action_audit(
        action="message.discard",
        ids=discarded_ids,
        changed=outcome.discarded,
        actor=actor,
        reason=reason,
        detail={**(detail or {}), "superseded": True, "candidates": outcome.candidates},
    )
    return outcome
