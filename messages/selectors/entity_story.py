"""An entity's whole story: its central row for each terminal, and every message that touched it.

What each message did is read from what the engine already recorded, exactly and without a new
write on the hot path:

- Processed: the worker's Processed event says ``applied`` when the change was written, and the
  no-op reason (messages/services/transitions.py, ``NOOP_REASON``) when the store already held that
  or a newer sequence from the same terminal (messages/handlers.py, ``EntityHandler``). A message
  whose events are gone falls back to the central row: it is "applied" when it wrote the stored version.
- DeadLettered, Discarded: what they say; Received, Failed, Processing: still waiting (and, when the
  store already holds that sequence or a newer one, a no-op once applied).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet

from messages.models import CentralEntity, Message, MessageEvent, MessageState
from syncadmin.lib.routers import central_alias

S = MessageState
APPLIED_REASON = "applied"  # the Processed event's reason when the change was written (services/processing.py)
STORY_SORTS = {"sequence": "sequence"}  # keyset pagination: sequence, then id
CENTRAL_ROWS_MAX = 200  # an entity every terminal sends: the page shows this many central rows


@dataclass(frozen=True)
class Outcome:
    kind: str  # applied | noop | dead_lettered | discarded | waiting | unknown
    label: str
    detail: str = ""


def entity_central_rows(*, entity_type: str, entity_key: str, limit: int = CENTRAL_ROWS_MAX) -> tuple[list, int]:
    """The central store's rows of one entity, one per terminal that sent it (by terminal), and how many there are."""
    rows = CentralEntity.objects.using(central_alias()).filter(entity_type=entity_type, entity_key=entity_key)
    listed = list(rows.order_by("terminal_code")[:limit])
    total = len(listed) if len(listed) < limit else rows.aggregate(n=Count("pk"))["n"]
    return listed, total


def entity_messages(*, entity_type: str, entity_key: str) -> QuerySet:
    """Every message that touched the entity, from every terminal (message_entity_idx); paged by the view."""
    return Message.objects.select_related("terminal").filter(entity_type=entity_type, entity_key=entity_key)


def entity_message_states(*, entity_type: str, entity_key: str) -> dict[str, int]:
    """How many of the entity's messages are in each state."""
    counts = (
        Message.objects.filter(entity_type=entity_type, entity_key=entity_key)
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return dict(counts)


def entity_outcomes(*, messages: list[Message], central: list[CentralEntity]) -> dict[int, Outcome]:
    """What each of ``messages`` did to the entity (one query for the Processed ones' events)."""
    stored = {row.terminal_code: row for row in central}
    processed = [m.pk for m in messages if m.state == S.PROCESSED]
    reasons: dict[int, str] = {}
    if processed:
        events = (
            MessageEvent.objects.filter(message_id__in=processed, to_state=S.PROCESSED)
            .order_by("at", "pk")
            .values_list("message_id", "reason")
        )
        reasons = dict(events)  # the last Processed event of each (there is one)
    return {m.pk: _outcome(m, reasons.get(m.pk), stored.get(m.terminal.code)) for m in messages}


def _outcome(m: Message, reason: str | None, row: CentralEntity | None) -> Outcome:
    wrote_stored = row is not None and row.last_message_pk == m.pk
    if m.state == S.PROCESSED:
        if reason == APPLIED_REASON or (reason is None and wrote_stored):
            return Outcome("applied", "applied", "the stored version" if wrote_stored else "overwritten since")
        if reason is None:
            return Outcome("unknown", "processed", "its events are gone (retention)")
        return Outcome("noop", "no-op: older", reason)
    if m.state == S.DEAD_LETTERED:
        return Outcome("dead_lettered", "dead-lettered", m.last_error)
    if m.state == S.DISCARDED:
        return Outcome("discarded", "discarded")
    detail = {S.FAILED: m.last_error, S.PROCESSING: "being applied now"}.get(m.state, "not yet applied")
    if row is not None and m.sequence <= row.last_sequence:
        detail = f"the store holds sequence {row.last_sequence}: it will be a no-op"
    return Outcome("waiting", f"waiting ({m.state})", detail)
