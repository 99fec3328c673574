"""Console login throttling: django-axes' database handler with one limit per lockout parameter.

settings.AXES_LOCKOUT_PARAMETERS locks on (username, IP) and on the IP alone. django-axes
compares every parameter with the one AXES_FAILURE_LIMIT; its maintainers' answer to "a
different limit for the IP" is a custom handler, and this is it:

- (username, IP): AXES_FAILURE_LIMIT failures lock that username from that address only. Never a
  username alone: failures from one address must not lock the account for everybody else.
- IP alone: SYNC_LOGIN_IP_FAILURE_LIMIT failures (over any usernames) lock every login from that
  address - a password spray. It is higher than the pair's, since one office behind NAT has
  several people mistyping.

A successful login clears the failures of that username from that address (its own typos, in
both counts) and nothing else: django-axes' default would also clear every other username's
failures from that address, so anyone with one valid account could reset a spray, or a guess at
a colleague's password, by logging in between tries.

The client address comes from settings.AXES_CLIENT_IP_CALLABLE (syncadmin.lib.client_address).
This module imports no app.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_lockout_parameters
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


def _is_ip_alone(parameter) -> bool:
    return parameter == "ip_address" or (not isinstance(parameter, str) and list(parameter) == ["ip_address"])


class LoginThrottleHandler(AxesDatabaseHandler):
    def get_failures(self, request, credentials: dict | None = None) -> int:
        """The failures that decide the lockout, on AXES_FAILURE_LIMIT's scale.

        django-axes locks when this reaches AXES_FAILURE_LIMIT. Each parameter's count is scaled
        from its own limit to that one, rounding down, so a count reaches AXES_FAILURE_LIMIT
        exactly when it reaches its own limit: ``floor(n * L / L_p) >= L`` iff ``n >= L_p``.
        """
        limit = settings.AXES_FAILURE_LIMIT
        parameters = get_lockout_parameters(request, credentials)
        worst = 0
        for parameter, attempts in zip(parameters, self.get_user_attempts(request, credentials), strict=True):
            count = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
            own_limit = settings.SYNC_LOGIN_IP_FAILURE_LIMIT if _is_ip_alone(parameter) else limit
            worst = max(worst, count * limit // own_limit)
        return worst

    def reset_user_attempts(self, request, credentials: dict | None = None) -> int:
        """On a successful login: forget this username's failures from this address only."""
        count, _ = AccessAttempt.objects.filter(
            username=get_client_username(request, credentials), ip_address=request.axes_ip_address
        ).delete()
        return count
