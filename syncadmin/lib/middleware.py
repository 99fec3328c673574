"""The console's HTTP middleware: caching that tells htmx fragments from pages, and idle sessions.

Shared helper: imports Django and django-htmx only, never an app.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import resolve_url
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect

# Where the time of the user's last activity (Unix seconds) is kept in the session.
IDLE_SESSION_KEY = "console_last_activity"
# Requests the page makes by itself (the dashboard's refresh, a bulk job's progress, a table's
# refresh after an action, the lazy match count) carry this header: static/console/console.js sets
# it for every element marked data-poll. They never count as activity.
POLL_HEADER = "X-Console-Poll"

# The clock, a module attribute so tests can move it.
clock = time.time


class HtmxVaryMiddleware:
    """``Vary: HX-Request`` on every response.

    Console URLs answer an htmx request with a fragment (a table, the dashboard body) and a normal
    request with the whole page. With only ``Vary: Cookie`` a browser keeps one cached answer per URL,
    so Back to a URL whose last answer was a fragment showed that bare fragment. Vary makes the
    cache key the URL plus the HX-Request header (django-htmx's advice); set on every response so a
    view added later cannot forget it.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        patch_vary_headers(response, ("HX-Request",))
        return response


class IdleSessionMiddleware:
    """Log out a user idle for ``CONSOLE_SESSION_IDLE_MINUTES`` (0: never), and send htmx to the login page.

    Activity is any request of a logged-in user that is not a poll (``X-Console-Poll: 1``): an open
    dashboard refreshing itself all night is not someone at the console. The time is kept in the
    session, written at most once a second. An idle user's next request is made as an anonymous
    one: a console page then redirects to the login page (``login_required``) and the public ones
    (/healthz, /metrics) answer as they would.

    An htmx request must not follow that redirect, or the login form lands inside a table: any
    redirect to the login page answering htmx becomes ``HX-Redirect``, so the whole window goes
    there (for idle sessions and sessions that ended any other way), with ``next`` the page the
    browser shows rather than the fragment's URL.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.CONSOLE_SESSION_IDLE_MINUTES * 60
        if limit > 0 and request.user.is_authenticated:
            now = int(clock())
            last = request.session.get(IDLE_SESSION_KEY)
            if last is not None and now - last > limit:
                logout(request)
                messages.info(request, f"You were logged out after {limit // 60} minutes of inactivity.")
            elif last is None or (last != now and request.headers.get(POLL_HEADER) != "1"):
                request.session[IDLE_SESSION_KEY] = now
        response = self.get_response(request)
        if request.htmx and response.status_code == 302 and _is_login_url(response["Location"]):
            login = redirect_to_login(request.htmx.current_url_abs_path or "/", settings.LOGIN_URL)
            return HttpResponseClientRedirect(login["Location"])
        return response


def _is_login_url(location: str) -> bool:
    return urlsplit(location).path == resolve_url(settings.LOGIN_URL)
