"""Writes of the ground's own tables: the audit log, API tokens, idempotency records, API call windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from syncadmin.lib.tokens import token_generate, token_hash
from syncadmin.models import ApiCallWindow, ApiToken, AuditEntry, IdempotencyRecord

# Every API token starts so: a secret scanner (or a person) recognises a leaked one.
API_TOKEN_PREFIX = "sat_"
# How stale an API token's last-used time may get before a call refreshes it: one write per token
# per minute, not one per call (a busy runbook makes hundreds).
API_TOKEN_USED_REFRESH_SECONDS = 60


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


# --- API tokens ------------------------------------------------------------------------------------


def api_token_create(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns it and the token itself (the only time it exists). Audited."""
    secret = token_generate(API_TOKEN_PREFIX)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name.strip()[:100],
            token_hash=token_hash(secret),
            prefix=secret[:12],
            created_at=timezone.now(),
            expires_at=expires_at,
        )
        audit_record(
            actor=f"user:{user.get_username()}",
            action="api_token.create",
            object_type="api_token",
            object_id=token.pk,
            detail={"name": token.name, "expires_at": expires_at.isoformat() if expires_at else None},
        )
    return token, secret


def api_token_revoke(*, token: ApiToken, actor: str) -> bool:
    """Revoke a token (it stops working at once); whether it changed anything. Audited."""
    with transaction.atomic():
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed:
            audit_record(
                actor=actor,
                action="api_token.revoke",
                object_type="api_token",
                object_id=token.pk,
                detail={"name": token.name, "user": token.user.get_username()},
            )
    token.refresh_from_db()
    return bool(changed)


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The live token ``secret`` is (not revoked, not expired, its user active), else None.

    Looked up by its hash (unique): the stored hash is of a 256-bit random value, so the lookup
    reveals nothing a guess could use. Refreshes ``last_used_at`` at most once a minute.
    """
    if not secret.startswith(API_TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(token_hash=token_hash(secret)).first()
    now = timezone.now()
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    last = token.last_used_at
    if last is None or (now - last).total_seconds() >= API_TOKEN_USED_REFRESH_SECONDS:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- idempotency keys --------------------------------------------------------------------------------


class IdempotencyConflict(Exception):
    """The key was used for another request (``mismatch``) or that request has not finished yet."""

    def __init__(self, message: str, *, mismatch: bool):
        super().__init__(message)
        self.mismatch = mismatch


def idempotency_claim(*, user, key: str, fingerprint: str, ttl: timedelta) -> IdempotencyRecord | None:
    """Take ``key`` for this request (None: go ahead), or the record of the first request that used it.

    Call inside the transaction that makes the change: the row inserted here (status 0) is the
    claim, and a concurrent request with the same key waits on its unique index until that
    transaction ends, then finds the answer. An expired record no longer counts and is replaced.
    """
    now = timezone.now()
    IdempotencyRecord.objects.filter(user=user, key=key, expires_at__lte=now).delete()
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(
                user=user, key=key, fingerprint=fingerprint, status=0, body="", created_at=now, expires_at=now + ttl
            )
        return None
    except IntegrityError:
        record = IdempotencyRecord.objects.get(user=user, key=key)
    if record.fingerprint != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was used for a different request", mismatch=True)
    if record.status == 0:
        raise IdempotencyConflict("the request first sent with this Idempotency-Key has not finished", mismatch=False)
    return record


def idempotency_store(*, user, key: str, status: int, body: str) -> None:
    """Keep the answer of the request that claimed ``key`` (same transaction as its change)."""
    IdempotencyRecord.objects.filter(user=user, key=key).update(status=status, body=body)


def idempotency_purge(*, now: datetime | None = None) -> int:
    """Delete the expired records; how many."""
    return IdempotencyRecord.objects.filter(expires_at__lte=now or timezone.now()).delete()[0]


# --- API rate windows --------------------------------------------------------------------------------


def api_call_count(*, caller: str, period_seconds: int, now: datetime | None = None) -> tuple[int, float]:
    """Count one call of ``caller`` in the current fixed window of ``period_seconds``.

    Returns the calls counted in that window so far, this one included, and the seconds left until
    the window ends. The increment is one UPDATE (a concurrent call waits on the row, then adds its
    own); the first call of a window inserts the row, and a call that loses that race adds to it.
    """
    now = now or timezone.now()
    epoch = int(now.timestamp()) // period_seconds * period_seconds
    start = datetime.fromtimestamp(epoch, tz=UTC)
    window = ApiCallWindow.objects.filter(caller=caller, window_start=start)
    with transaction.atomic():
        if not window.update(calls=F("calls") + 1):
            try:
                with transaction.atomic():
                    ApiCallWindow.objects.create(caller=caller, window_start=start, calls=1)
            except IntegrityError:
                window.update(calls=F("calls") + 1)
        calls = window.values_list("calls", flat=True).get()
    return calls, epoch + period_seconds - now.timestamp()


def api_call_windows_purge(*, older_than: timedelta = timedelta(days=1), now: datetime | None = None) -> int:
    """Delete the windows that ended long ago (the longest rate period is a day); how many."""
    return ApiCallWindow.objects.filter(window_start__lt=(now or timezone.now()) - older_than).delete()[0]
