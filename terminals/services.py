"""Writes on terminals: creation and API keys.

Keys are 256-bit random tokens shown once; only their SHA-256 is stored. A fast hash is the
right tool for a high-entropy token checked on every request; comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from syncadmin.lib.tokens import token_generate, token_hash
from terminals.models import Terminal, UsedNonce


def api_key_hash(key: str) -> str:
    return token_hash(key)


def api_key_generate() -> str:
    return token_generate()  # 32 random bytes


def terminal_create(*, code: str, name: str = "", store: str = "") -> tuple[Terminal, str]:
    """Create an enabled terminal; returns it and its API key (the only time the key exists)."""
    key = api_key_generate()
    terminal = Terminal.objects.create(
        code=code, name=name, store=store, enabled=True, api_key_hash=api_key_hash(key), key_rotated_at=timezone.now()
    )
    return terminal, key


def terminal_rotate_key(*, terminal: Terminal) -> str:
    """Give the terminal a new key; the old one stops working at once."""
    key = api_key_generate()
    with transaction.atomic():
        Terminal.objects.filter(pk=terminal.pk).update(
            api_key_hash=api_key_hash(key), key_rotated_at=timezone.now(), updated_at=timezone.now()
        )
    terminal.refresh_from_db()
    return key


_BY_CODE = f"SELECT * FROM {Terminal._meta.db_table} WHERE code = %s"


def terminal_authenticate(*, code: str | None, key: str | None) -> Terminal | None:
    """The terminal whose code and key match, else None (no hint which part was wrong).

    A disabled terminal is returned too: the caller refuses it with its own fault.
    """
    presented = api_key_hash(key or "")
    # A raw query (codes are unique): building the ORM query cost twice as much CPU as
    # running it, on every SOAP request.
    terminal = next(iter(Terminal.objects.raw(_BY_CODE, [code])), None) if code else None
    # Compare against a dummy hash when the code is unknown so timing does not reveal it.
    expected = terminal.api_key_hash if terminal and terminal.api_key_hash else "0" * 64
    if hmac.compare_digest(presented, expected) and terminal is not None and terminal.api_key_hash:
        return terminal
    return None


# How stale last_seen_at may get before a request refreshes it: one write per terminal per
# window instead of one per request keeps the hot ingest path free of an extra UPDATE.
SEEN_REFRESH_SECONDS = 30


def terminal_mark_seen(*, terminal: Terminal) -> None:
    """Record that the terminal just talked to us (at most once per SEEN_REFRESH_SECONDS)."""
    now = timezone.now()
    if terminal.last_seen_at and (now - terminal.last_seen_at).total_seconds() < SEEN_REFRESH_SECONDS:
        return
    Terminal.objects.filter(pk=terminal.pk).update(last_seen_at=now)
    terminal.last_seen_at = now


class InvalidHeartbeat(ValueError):
    """A heartbeat that cannot be stored; nothing of it is stored."""


def terminal_heartbeat(
    *, terminal: Terminal, app_version: str | None, local_backlog: int | None, terminal_time: datetime | None
) -> datetime:
    """Store what a terminal reports about itself; returns the server time of the heartbeat.

    Clock skew is terminal time minus server time (positive: the terminal's clock is ahead).
    A terminal time later than the hub's clock plus SYNC_MAX_CLOCK_SKEW_SECONDS is refused, as
    the contract refuses a count report dated in the future (InvalidHeartbeat).
    """
    now = timezone.now()
    if terminal_time is not None:
        if timezone.is_naive(terminal_time):
            terminal_time = timezone.make_aware(terminal_time, UTC)
        limit = settings.SYNC_MAX_CLOCK_SKEW_SECONDS
        if terminal_time > now + timedelta(seconds=limit):
            raise InvalidHeartbeat(
                f"TerminalTime {terminal_time.isoformat()} is more than {limit} s ahead of the hub's clock "
                f"({now.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}): set the terminal's clock"
            )
    fields = {
        "last_seen_at": now,
        "last_heartbeat_at": now,
        "app_version": (app_version or "")[:64],
        "reported_backlog": local_backlog,
        "clock_skew_seconds": (terminal_time - now).total_seconds() if terminal_time else None,
    }
    Terminal.objects.filter(pk=terminal.pk).update(**fields)
    for name, value in fields.items():
        setattr(terminal, name, value)
    return now


# --- WS-Security nonces -----------------------------------------------------------------------


def nonce_digest(nonce: str) -> str:
    """What is stored of a nonce: fixed length whatever the client sent (whitespace ignored)."""
    return hashlib.sha256("".join(nonce.split()).encode("utf-8")).hexdigest()


def terminal_nonce_use(*, terminal: Terminal, nonce: str, keep_until: datetime) -> bool:
    """Record that ``terminal`` used ``nonce``; False when it already did and that use still counts.

    The unique (terminal, nonce) row is the replay check, atomic across every web node: of two
    requests carrying the same nonce at the same moment, exactly one inserts it. A row whose
    ``keep_until`` has passed no longer counts (the purge may not have run yet): it is replaced.
    ``keep_until`` is when a request carrying this nonce can no longer pass the freshness check.
    """
    digest = nonce_digest(nonce)
    now = timezone.now()
    with transaction.atomic():
        UsedNonce.objects.filter(terminal=terminal, nonce_digest=digest, keep_until__lt=now).delete()
        try:
            with transaction.atomic():
                UsedNonce.objects.create(terminal=terminal, nonce_digest=digest, keep_until=keep_until)
        except IntegrityError:
            return False
    return True


def terminal_nonces_purge(*, now: datetime | None = None) -> int:
    """Delete the nonces that can no longer be replayed; returns how many."""
    return UsedNonce.objects.filter(keep_until__lt=now or timezone.now()).delete()[0]
