"""Who calls: a user's API token (``Authorization: Bearer``) or the console's session (with its CSRF token).

Either way the call acts as that user, with that user's permissions: the console's roles, checked
here on the server by ``require`` before any service runs. ``request.user`` is the token's user, so
the audit log names the same actor (``user:<name>``) as for the same action in the console.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from ninja.security import HttpBearer, SessionAuth
from ninja.throttling import BaseThrottle

from syncadmin.api.problems import ProblemError
from syncadmin.models import ApiToken
from syncadmin.services import api_call_count, api_token_authenticate


class TokenAuth(HttpBearer):
    """``Authorization: Bearer sat_...``: a live token of an active user."""

    def authenticate(self, request, token: str):
        found = api_token_authenticate(secret=token)
        if found is None:
            return None
        request.user = found.user
        return found


class ConsoleSessionAuth(SessionAuth):
    """The console's login session; a state-changing call must carry the CSRF token too (ninja checks it)."""

    def __call__(self, request):
        # No session: not this method's call. (ninja's check would answer a script's POST with a wrong
        # token "403 CSRF" instead of 401.)
        if not getattr(request, "user", AnonymousUser()).is_authenticated:
            return None
        return super().__call__(request)

    def authenticate(self, request, key):
        user = getattr(request, "user", AnonymousUser())
        return user if user.is_authenticated else None


PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rate_parse(rate: str) -> tuple[int, int]:
    """``"600/m"`` → (600 calls, 60 seconds)."""
    count, _, period = rate.partition("/")  # its form is checked by the settings
    return int(count), PERIODS[period]


class TokenRateThrottle(BaseThrottle):
    """SYNC_API_RATE calls per token (or per session user) and fixed window, counted in the database
    (``api_call_count``), so the limit holds across every gunicorn worker and web node."""

    def __init__(self):
        # One instance serves every thread of a gthread worker: the wait of this thread's call.
        self._local = threading.local()

    def allow_request(self, request) -> bool:
        auth = getattr(request, "auth", None)
        if isinstance(auth, ApiToken):
            caller = f"token:{auth.pk}"
        elif getattr(auth, "pk", None) is not None:
            caller = f"user:{auth.pk}"
        else:
            return True  # not authenticated: answered 401 before any count
        limit, period = rate_parse(settings.SYNC_API_RATE)  # read per call: a changed rate applies at once
        calls, self._local.wait = api_call_count(caller=caller, period_seconds=period)
        return calls <= limit

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)


AUTH = [TokenAuth(), ConsoleSessionAuth()]


def require(request, *perms: str) -> None:
    """403 unless the caller holds every permission in ``perms`` (the console's checks, on the server)."""
    if not request.user.has_perms(perms):
        raise ProblemError(403, f"you need the permission {' and '.join(perms)}")


def actor_of(request) -> str:
    """How the caller is named in MessageEvent.actor and AuditEntry.actor: as in the console."""
    return f"user:{request.user.get_username()}"
