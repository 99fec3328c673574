"""Who calls: a user's API token (``Authorization: Bearer``) or the console's session (with its CSRF token).

Either way the call acts as that user, with that user's permissions: the console's roles, checked
here on the server by ``require`` before any service runs. ``request.user`` is the token's user, so
the audit log names the same actor (``user:<name>``) as for the same action in the console.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from ninja.security import HttpBearer, SessionAuth
from ninja.throttling import AuthRateThrottle

from syncadmin.api.problems import ProblemError
from syncadmin.services import api_token_authenticate


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


class TokenRateThrottle(AuthRateThrottle):
    """SYNC_API_RATE calls per token (or per session user), counted in Django's cache."""

    def __init__(self):
        super().__init__(settings.SYNC_API_RATE)

    def allow_request(self, request) -> bool:
        # The setting is read on every call (cheap), not once at import: a changed rate applies at once.
        if self.rate != settings.SYNC_API_RATE:
            self.rate = settings.SYNC_API_RATE
            self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request)


AUTH = [TokenAuth(), ConsoleSessionAuth()]


def require(request, *perms: str) -> None:
    """403 unless the caller holds every permission in ``perms`` (the console's checks, on the server)."""
    if not request.user.has_perms(perms):
        raise ProblemError(403, f"you need the permission {' and '.join(perms)}")


def actor_of(request) -> str:
    """How the caller is named in MessageEvent.actor and AuditEntry.actor: as in the console."""
    return f"user:{request.user.get_username()}"
