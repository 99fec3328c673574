"""The console's security headers (issue 15): a Content-Security-Policy on every console page (not on the
SOAP endpoint), ``Vary: HX-Request`` wherever a URL answers both a page and a fragment, and
``Cache-Control: no-store`` wherever a payload or an API key is shown.

Every console URL comes from the URLconf (tests/console_pages.py), so a page added later is covered.
"""

import pytest
import requests
from django.urls import reverse

from messages.models import MessageState
from terminals.models import Terminal
from terminals.services import terminal_create
from terminals.simulator import make_client
from tests.console_pages import console_objects, console_pages
from tests.factories import DeadLetterFactory, TerminalFactory

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy_of(response) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";"))


def get(client, url, headers=None):
    response = client.get(url, headers=headers or {})
    if response.streaming:  # the CSV export: read it through, its cursor closes
        b"".join(response.streaming_content)
    return response


@pytest.fixture
def pages(db):
    found = console_pages(console_objects())
    assert len(found) >= 35  # the URLconf walk did find the console
    return found


def test_every_console_page_and_fragment_sends_the_policy(login_as, pages):
    client = login_as("superuser")
    for page in pages:
        for headers in (None, HX):
            response = get(client, page.url, headers)
            assert response.status_code != 500, page
            assert policy_of(response) == POLICY, page


def test_the_policy_allows_no_inline_script_style_or_eval(client):
    header = client.get(reverse("login"))["Content-Security-Policy"]
    assert "unsafe" not in header and "nonce-" not in header and "data:" not in header


def test_the_soap_endpoint_and_its_wsdl_carry_no_policy_and_zeep_still_works(live_server, transactional_db):
    """The WSDL is fetched through the live server only: spyne keeps the address of its first reader."""
    url = live_server.url + "/soap/terminal/v1/"
    wsdl = requests.get(url + "?wsdl", timeout=30)
    assert wsdl.status_code == 200 and b"TerminalSyncService" in wsdl.content
    assert "Content-Security-Policy" not in wsdl.headers
    fault = requests.post(url, data=b"<not-soap/>", headers={"Content-Type": "text/xml"}, timeout=30)
    assert fault.status_code == 500 and b"Fault" in fault.content  # a SOAP fault, as before
    assert "Content-Security-Policy" not in fault.headers
    terminal, key = terminal_create(code="CSP-T1")
    client = make_client(url, terminal.code, key)
    try:
        assert client.service.FetchUpdates(maxCount=1) is None  # nothing pending: zeep reads the answer
    finally:
        client.transport.session.close()


def test_every_console_url_varies_on_hx_request(login_as, pages):
    """A page and its htmx fragment share a URL: the cache key must tell them apart (Back showed a
    bare table once), on the fragment and on the full page alike."""
    client = login_as("superuser")
    for page in pages:
        for headers in (None, HX):
            vary = {v.strip().lower() for v in get(client, page.url, headers).get("Vary", "").split(",")}
            assert "hx-request" in vary, page


@pytest.mark.parametrize(
    "url",
    [
        "/messages/",
        "/dead-letters/",
        "/terminals/",
        "/audit/",
        "/bulk-jobs/",
        "/retention/",
        "/reconciliation/discrepancies/",
        "/reconciliation/runs/",
    ],
)
def test_a_history_restore_gets_the_whole_page(login_as, url):
    """htmx restoring a history entry it has no copy of swaps the answer into <body>: a page, never a table."""
    response = login_as("superuser").get(url, headers={**HX, "HX-History-Restore-Request": "true"})
    assert response.status_code == 200
    assert b'<header class="topbar">' in response.content


@pytest.fixture
def dead(terminal):
    return DeadLetterFactory(message__terminal=terminal, message__payload='{"secret": "payload"}').message


def assert_no_store(response):
    assert response.status_code in (200, 302), response.status_code
    assert "no-store" in response["Cache-Control"], response.get("Cache-Control")


def test_pages_that_show_a_payload_are_never_stored(login_as, dead):
    client = login_as("Terminal admins")
    assert_no_store(get(client, f"/messages/{dead.pk}/"))
    detail_body = get(client, f"/messages/{dead.pk}/", HX)
    assert b"payload" in detail_body.content and b"<html" not in detail_body.content
    assert_no_store(detail_body)
    assert_no_store(get(client, f"/messages/{dead.pk}/edit/"))
    assert_no_store(get(client, "/messages/export.csv?state=DeadLettered"))
    # The in-place action answers carry the message body (payload included) too.
    assert_no_store(client.post(f"/messages/{dead.pk}/retry/", {"reason": "x"}, headers=HX))
    assert_no_store(client.post(f"/messages/{dead.pk}/discard/", {"reason": "dup"}, headers=HX))
    dead.refresh_from_db()
    assert dead.state == MessageState.DISCARDED
    assert_no_store(client.post(f"/messages/{dead.pk}/restore/", {"reason": "back"}, headers=HX))
    assert_no_store(client.post(f"/messages/{dead.pk}/discard/", {"reason": "dup"}))


def test_pages_that_show_an_api_key_are_never_stored(login_as):
    client = login_as("Terminal admins")
    created = client.post("/terminals/new/", {"code": "KEY-T1", "name": "Till", "store": "S1"})
    assert b"shown this once" in created.content
    assert_no_store(created)
    terminal = Terminal.objects.get(code="KEY-T1")
    assert_no_store(client.post(f"/terminals/{terminal.pk}/rotate-key/", {"reason": "r"}))
    assert_no_store(client.post(f"/terminals/{terminal.pk}/rotate-key/", {"reason": "r"}, headers=HX))


def test_lists_stay_cacheable_by_the_browser(login_as):
    """no-store only where it is needed: the lists rely on Vary instead (Back stays cheap)."""
    TerminalFactory()
    response = login_as("Viewers").get("/messages/")
    assert "no-store" not in response.get("Cache-Control", "")
