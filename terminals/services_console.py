"""Operator actions on terminals from the console; each is audited.

The key services (terminal_create, terminal_rotate_key) stay in terminals/services.py; these
wrap them with who/why and add the plain edits (name, store, enabled).
"""

from __future__ import annotations

from django.db import transaction

from syncadmin.services import audit_record
from terminals.models import Terminal
from terminals.services import terminal_create, terminal_rotate_key


def terminal_operator_create(*, code: str, name: str, store: str, actor: str) -> tuple[Terminal, str]:
    with transaction.atomic():
        terminal, key = terminal_create(code=code, name=name, store=store)
        audit_record(
            actor=actor,
            action="terminal.create",
            object_type="terminal",
            object_id=terminal.code,
            detail={"name": name, "store": store},
        )
    return terminal, key


# The store-hours fields an edit may change (None: left as they are, e.g. by the API's edit).
STORE_HOURS = ("time_zone", "opens_at", "closes_at")


def terminal_update(*, terminal: Terminal, name: str, store: str, actor: str, hours: dict | None = None) -> Terminal:
    """Rename or move a terminal; ``hours`` (time_zone, opens_at, closes_at) sets its store's opening hours."""
    fields = ["name", "store", *(STORE_HOURS if hours is not None else ())]
    before = {f: _plain(getattr(terminal, f)) for f in fields}
    with transaction.atomic():
        terminal.name, terminal.store = name, store
        for field in STORE_HOURS if hours is not None else ():
            blank = "" if field == "time_zone" else None  # a text field is blank, a time null
            setattr(terminal, field, hours[field] or blank)
        terminal.save(update_fields=[*fields, "updated_at"])
        audit_record(
            actor=actor,
            action="terminal.edit",
            object_type="terminal",
            object_id=terminal.code,
            detail={"before": before, "after": {f: _plain(getattr(terminal, f)) for f in fields}},
        )
    return terminal


def _plain(value):
    """A field's value as the audit log's JSON holds it (a time as 08:00:00)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def terminal_set_enabled(*, terminal: Terminal, enabled: bool, actor: str, reason: str = "") -> bool:
    """Enable or disable; returns whether anything changed (a repeated click changes nothing)."""
    with transaction.atomic():
        changed = Terminal.objects.filter(pk=terminal.pk, enabled=not enabled).update(enabled=enabled)
        if changed:
            audit_record(
                actor=actor,
                action="terminal.enable" if enabled else "terminal.disable",
                object_type="terminal",
                object_id=terminal.code,
                reason=reason,
            )
    terminal.refresh_from_db()
    return bool(changed)


def terminal_operator_rotate_key(*, terminal: Terminal, actor: str, reason: str = "") -> str:
    with transaction.atomic():
        key = terminal_rotate_key(terminal=terminal)
        audit_record(
            actor=actor, action="terminal.rotate_key", object_type="terminal", object_id=terminal.code, reason=reason
        )
    return key
