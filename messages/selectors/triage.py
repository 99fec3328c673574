"""Reads for failure-group triage and superseded dead letters (issue 20).

A dead letter is *superseded* when the central store already holds a sequence at or above the
message's for the same (terminal, entity type, entity key): applying it is a no-op (central_store.py
applies a change only above ``last_sequence``), so a retry can never change anything. Stored
sequences only grow, so once superseded a message stays superseded.

Held groups (status "on hold") raise no alert: ``deadletter_open_not_on_hold()`` is the open dead
letters an alert rule should count, ``deadletter_groups_on_hold()`` the held groups themselves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from messages.models import (
    CentralEntity,
    DeadLetter,
    DeadLetterGroupEvent,
    DeadLetterGroupNote,
    Message,
    MessageState,
    TriageStatus,
)
from syncadmin.lib.routers import central_alias
from syncadmin.lib.sql import chunks

# How each grouping of the dead-letter page names a dead letter's group: grouping -> DeadLetter field.
GROUP_FIELDS = {"reason": "group_key", "terminal": "message__terminal__code", "entity": "message__entity_type"}
# The message list's filter that selects a group's messages: grouping -> filter name (messages/filtersets.py).
MESSAGE_FILTERS = {"reason": "group", "terminal": "terminal", "entity": "entity_type"}
# The owner filter's two words besides a username.
OWNER_MINE, OWNER_NOBODY = "mine", "nobody"


def _central_is_local() -> bool:
    """Whether the central store shares the queue's database, so that one query can join them."""
    return central_alias() == Message.objects.db


def superseded_exists(prefix: str = "") -> Exists:
    """Exists(): the central store holds this message's entity at or above its sequence, from its terminal.

    ``prefix`` reaches the message from the outer query ("message__" from a DeadLetter). One probe of
    central_entity_uniq (terminal_code, entity_type, entity_key) per row. Only where the central store
    is local (``_central_is_local``).
    """
    return Exists(
        CentralEntity.objects.filter(
            terminal_code=OuterRef(f"{prefix}terminal__code"),
            entity_type=OuterRef(f"{prefix}entity_type"),
            entity_key=OuterRef(f"{prefix}entity_key"),
            last_sequence__gte=OuterRef(f"{prefix}sequence"),
        )
    )


def message_superseded_sequences(*, message_ids: Iterable[int]) -> dict[int, int]:
    """Of the dead-lettered messages among ``message_ids``: the superseded ones -> the stored sequence.

    Works wherever the central store lives: the messages' entities are looked up by terminal, in
    chunks, through the central store's unique index.
    """
    out: dict[int, int] = {}
    for chunk in chunks(message_ids):
        rows = Message.objects.filter(pk__in=chunk, state=MessageState.DEAD_LETTERED).values_list(
            "pk", "terminal__code", "entity_type", "entity_key", "sequence"
        )
        by_terminal: dict[str, list[tuple]] = defaultdict(list)
        for row in rows:
            by_terminal[row[1]].append(row)
        for code, items in by_terminal.items():
            stored = {
                (t, k): seq
                for t, k, seq in CentralEntity.objects.using(central_alias())
                .filter(terminal_code=code, entity_key__in={i[3] for i in items}, entity_type__in={i[2] for i in items})
                .values_list("entity_type", "entity_key", "last_sequence")
            }
            for pk, _, entity_type, entity_key, sequence in items:
                seq = stored.get((entity_type, entity_key))
                if seq is not None and seq >= sequence:
                    out[pk] = seq
    return out


def _open(grouping: str | None = None, key: str | None = None) -> QuerySet:
    qs = DeadLetter.objects.filter(resolution="")
    return qs.filter(**{GROUP_FIELDS[grouping]: key}) if grouping else qs


def deadletter_group_open_ids(*, grouping: str, key: str) -> list[int]:
    """The message ids of a group's open dead letters."""
    return list(_open(grouping, key).order_by("message_id").values_list("message_id", flat=True))


def deadletter_group_superseded(*, grouping: str, key: str) -> dict[int, int]:
    """A group's superseded open dead letters: message id -> the stored sequence that supersedes it."""
    return message_superseded_sequences(message_ids=deadletter_group_open_ids(grouping=grouping, key=key))


def deadletter_superseded_counts(*, grouping: str) -> dict[str, int]:
    """Superseded open dead letters per group of ``grouping`` (groups with none are left out)."""
    column = GROUP_FIELDS[grouping]
    if _central_is_local():
        rows = _open().values(column).annotate(n=Count("pk", filter=Q(superseded_exists("message__")))).order_by()
        return {r[column] or "": r["n"] for r in rows if r["n"]}
    ids = message_superseded_sequences(message_ids=_open().values_list("message_id", flat=True))
    rows = _open().filter(message_id__in=list(ids)).values(column).annotate(n=Count("pk")).order_by()
    return {r[column] or "": r["n"] for r in rows}


def deadletter_group_triage(*, grouping: str, key: str) -> DeadLetterGroupNote | None:
    return DeadLetterGroupNote.objects.filter(grouping=grouping, key=key).first()


def deadletter_group_history(*, grouping: str, key: str, limit: int = 200) -> list[DeadLetterGroupEvent]:
    """The group's triage changes and recurrences, newest first."""
    return list(DeadLetterGroupEvent.objects.filter(grouping=grouping, key=key).order_by("-at", "-pk")[:limit])


def deadletter_groups_on_hold(*, grouping: str | None = None) -> QuerySet:
    """The groups support has put on hold (DeadLetterGroupNote rows): they raise no alert."""
    qs = DeadLetterGroupNote.objects.filter(status=TriageStatus.ON_HOLD)
    return qs.filter(grouping=grouping) if grouping else qs


def deadletter_open_not_on_hold() -> QuerySet:
    """Open dead letters outside every held group (by reason, terminal or entity type): what alerts count.

    A dead letter is left out when any grouping that holds it is on hold.
    """
    return deadletter_exclude_held(DeadLetter.objects.filter(resolution=""))


def deadletter_exclude_held(queryset: QuerySet) -> QuerySet:
    """``queryset`` (of DeadLetter) without the dead letters any held group (reason, terminal, entity) holds."""
    held = deadletter_groups_on_hold()
    for grouping, column in GROUP_FIELDS.items():
        queryset = queryset.exclude(**{f"{column}__in": held.filter(grouping=grouping).values("key")})
    return queryset


def deadletter_groups_match(
    groups: list[dict], *, triage: dict[str, DeadLetterGroupNote], status: str = "", owner: str = "", username: str = ""
) -> list[dict]:
    """The groups (from deadletter_groups) whose triage has ``status`` and ``owner``; blank: any.

    A group without a triage row is new and owned by nobody. ``owner`` is a username, "mine"
    (``username``) or "nobody".
    """
    out = []
    for g in groups:
        t = triage.get(g["key"] or "")
        g_status, g_owner = (t.status, t.owner) if t else (TriageStatus.NEW, "")
        if status and g_status != status:
            continue
        wanted = {OWNER_MINE: username, OWNER_NOBODY: ""}.get(owner, owner)
        if owner and g_owner != wanted:
            continue
        out.append(g)
    return out


def deadletter_group_owners() -> list[str]:
    """Everyone who owns a group now, for the owner filter."""
    return sorted(set(DeadLetterGroupNote.objects.exclude(owner="").values_list("owner", flat=True)))
