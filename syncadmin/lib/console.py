"""What every console view shares: permission checks, the actor's name, htmx fragments, table context."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.context_processors import PermWrapper
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.middleware.csrf import get_token
from django.template import Context


def console_view(*perms: str):
    """Login required (anonymous -> login page), then every permission in ``perms`` or 403.

    The check is on the server for every request; templates hide buttons only as a courtesy.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if perms and not request.user.has_perms(perms):
                raise PermissionDenied(f"you need the permission {' and '.join(perms)}")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


def actor_of(request) -> str:
    """How an operator is named in MessageEvent.actor and AuditEntry.actor."""
    return f"user:{request.user.get_username()}"


def wants_fragment(request) -> bool:
    """Whether an htmx request asks for a part of the page rather than the page.

    htmx restoring a history entry it has no copy of asks for the page (HX-History-Restore-Request),
    even from an htmx version that also sends HX-Request. Every response says ``Vary: HX-Request``
    (syncadmin.lib.middleware), so a browser never serves one kind of answer for the other.
    """
    return bool(request.htmx) and not request.htmx.history_restore_request


def bind_table_context(table, request):
    """TemplateColumns render outside the page's context: give them perms and the CSRF token."""
    table.context = Context({"request": request, "perms": PermWrapper(request.user), "csrf_token": get_token(request)})
    return table
