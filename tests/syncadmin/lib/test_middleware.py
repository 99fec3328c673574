"""The idle session timeout (CONSOLE_SESSION_IDLE_MINUTES) and the way htmx requests reach the login page.

The clock is the middleware's own (``console_middleware.clock``), moved by the tests: no sleeping.
"""

import pytest
from django.urls import reverse

from messages.models import MessageState
from syncadmin.lib import middleware as console_middleware
from syncadmin.lib.middleware import IDLE_SESSION_KEY, POLL_HEADER
from tests.factories import DeadLetterFactory

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/messages/?state=Failed"}
POLL = {"HX-Request": "true", "HX-Current-URL": "http://testserver/", POLL_HEADER: "1"}
MINUTE = 60
T0 = 1_800_000_000


@pytest.fixture
def clock(monkeypatch, settings):
    settings.CONSOLE_SESSION_IDLE_MINUTES = 60
    now = [T0]
    monkeypatch.setattr(console_middleware, "clock", lambda: now[0])

    def at(seconds_after_t0: float):
        now[0] = T0 + seconds_after_t0

    return at


def logged_out_to(response) -> str:
    """Where a logged-out request was sent: a page's Location, or htmx's HX-Redirect."""
    return response.get("HX-Redirect") or response["Location"]


def test_a_user_idle_past_the_limit_must_log_in_again(login_as, clock):
    client = login_as("Viewers")
    clock(0)
    assert client.get("/messages/").status_code == 200
    clock(60 * MINUTE)  # exactly the limit: still in
    assert client.get("/audit/").status_code == 200
    clock(60 * MINUTE + 60 * MINUTE + 1)  # idle one second too long since the last request
    response = client.get("/messages/?state=Failed")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/messages/%3Fstate%3DFailed"
    login_page = client.get(response["Location"])
    assert b"logged out after 60 minutes of inactivity" in login_page.content
    clock(60 * MINUTE + 60 * MINUTE + 2)  # and the session is gone for good, not only for that request
    assert client.get("/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_an_idle_htmx_request_sends_the_whole_window_to_the_login_page(login_as, clock):
    """Not a 302 that htmx would follow and swap a login form into the table: HX-Redirect, with the
    page the browser shows as ``next``, not the fragment's URL."""
    client = login_as("Viewers")
    clock(0)
    client.get("/")
    clock(61 * MINUTE)
    response = client.get("/messages/count/?state=Failed", headers=HX)
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=/messages/%3Fstate%3DFailed"
    assert b"id_username" not in response.content


def test_an_idle_user_cannot_act(login_as, clock):
    dead = DeadLetterFactory().message
    client = login_as("Support")
    clock(0)
    client.get(f"/messages/{dead.pk}/")
    clock(61 * MINUTE)
    response = client.post(f"/messages/{dead.pk}/retry/", {"reason": "late"}, headers=HX)
    assert response["HX-Redirect"].startswith("/accounts/login/")
    dead.refresh_from_db()
    assert dead.state == MessageState.DEAD_LETTERED


def test_polling_alone_does_not_keep_the_session_alive(login_as, clock):
    """An open dashboard refreshes itself every few seconds: those requests are not the user."""
    client = login_as("Viewers")
    clock(0)
    client.get("/")
    for minute in range(5, 61, 5):
        clock(minute * MINUTE)
        response = client.get("/?window=6h", headers=POLL)
        assert response.status_code == 200 and b'id="dashboard"' in response.content
        assert client.session[IDLE_SESSION_KEY] == T0  # the poll did not count
    clock(60 * MINUTE + 1)
    assert logged_out_to(client.get("/?window=6h", headers=POLL)) == "/accounts/login/?next=/"


def test_activity_keeps_the_session_alive(login_as, clock):
    client = login_as("Viewers")
    clock(0)
    client.get("/")
    clock(50 * MINUTE)
    assert client.get("/messages/", headers=HX).status_code == 200  # filtering the table is activity
    clock(100 * MINUTE)  # 100 minutes after the first request, 50 after the last
    assert client.get("/messages/").status_code == 200
    clock(140 * MINUTE)
    assert client.get("/", headers=POLL).status_code == 200
    clock(160 * MINUTE + 1)  # 60 minutes and a second after the last real request
    assert logged_out_to(client.get("/")).startswith("/accounts/login/")


def test_zero_minutes_never_logs_out(login_as, clock, settings):
    settings.CONSOLE_SESSION_IDLE_MINUTES = 0
    client = login_as("Viewers")
    clock(0)
    client.get("/")
    clock(365 * 24 * 60 * MINUTE)
    assert client.get("/").status_code == 200


def test_an_htmx_request_without_a_session_goes_to_the_login_page_whole(client):
    """However the session ended (idle, expired cookie, logged out in another tab)."""
    response = client.get("/messages/?state=Failed", headers=HX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/messages/%3Fstate%3DFailed"
    page = client.get("/messages/?state=Failed")
    assert page.status_code == 302 and page["Location"] == "/accounts/login/?next=/messages/%3Fstate%3DFailed"


def test_public_endpoints_answer_an_idle_user_as_anyone(login_as, clock, settings):
    client = login_as("Viewers")
    clock(0)
    client.get("/")
    clock(61 * MINUTE)
    assert client.get(reverse("healthz")).status_code in (200, 503)  # not a redirect to the login page
