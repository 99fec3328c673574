"""Terminal pages: list, create, edit, enable/disable, key rotation, detail; and who may do what."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messages.models import MessageState, OutboundUpdate
from reconciliation.models import ReportedCount
from syncadmin.models import AuditEntry
from terminals.models import Terminal
from terminals.services import api_key_hash, terminal_authenticate
from tests.factories import DeadLetterFactory, MessageFactory, TerminalFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def test_list_shows_status_backlog_and_dead_letters(login_as, settings):
    settings.TERMINAL_OFFLINE_SECONDS = 300
    now = datetime.now(UTC)
    on = TerminalFactory(code="ON1", last_heartbeat_at=now, app_version="4.2.0", clock_skew_seconds=75.0)
    TerminalFactory(code="OFF1", last_heartbeat_at=now - timedelta(hours=1))
    TerminalFactory(code="DIS1", enabled=False)
    MessageFactory.create_batch(2, terminal=on, state=MessageState.RECEIVED)
    DeadLetterFactory(message__terminal=on)
    client = login_as("Viewers")
    response = client.get("/terminals/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "st-online" in body and "st-offline" in body and "st-disabled" in body
    assert "4.2.0" in body and "+75.0 s" in body
    assert "{#" not in body and "{%" not in body
    assert response.context["table"].counts[on.pk] == {"backlog": 2, "dead": 1}
    offline = client.get("/terminals/?status=offline", **HX)
    assert [r.record.code for r in offline.context["table"].page.object_list] == ["OFF1"]
    assert b"<html" not in offline.content
    assert [r.record.code for r in client.get("/terminals/?q=dis").context["table"].page.object_list] == ["DIS1"]


def test_list_counts_the_waiting_messages_in_one_grouped_read(login_as):
    # The backlog and dead-letter columns are the health score's own counts: the page reads the
    # queue state table's waiting rows once, not once for the columns and again for the score.
    t = TerminalFactory(code="T1", last_heartbeat_at=datetime.now(UTC))
    MessageFactory(terminal=t, state=MessageState.RECEIVED)
    MessageFactory(terminal=t, state=MessageState.FAILED)
    DeadLetterFactory(message__terminal=t)
    client = login_as("Viewers")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/terminals/")
    assert response.context["table"].counts[t.pk] == {"backlog": 2, "dead": 1}
    # The waiting messages by terminal: read from the state rows' own copy of the terminal.
    waiting = [q["sql"] for q in queries if '"queue_messages_messagestate"."queue_terminal_id" IN' in q["sql"]]
    assert len(waiting) == 1, waiting


def test_detail_shows_messages_updates_and_reported_counts(login_as):
    t = TerminalFactory(code="D1")
    m = MessageFactory(terminal=t)
    OutboundUpdate.objects.create(
        terminal=t, update_id="u-1", update_type="price.update", entity_key="SKU-1", created_at=datetime.now(UTC)
    )
    old = datetime.now(UTC) - timedelta(days=1)
    ReportedCount.objects.create(terminal=t, entity_type="product", count=10, as_of=old)
    ReportedCount.objects.create(terminal=t, entity_type="product", count=12, as_of=datetime.now(UTC))
    response = login_as("Viewers").get(f"/terminals/{t.pk}/")
    body = response.content.decode()
    assert response.status_code == 200
    assert m.message_id in body and "price.update" in body
    assert [r.count for r in response.context["reported"]] == [12]


def test_terminal_admin_creates_terminal_and_sees_key_once(login_as):
    client = login_as("Terminal admins")
    assert client.get("/terminals/new/").status_code == 200
    response = client.post("/terminals/new/", {"code": "NEW-1", "name": "Till 1", "store": "Main"})
    assert response.status_code == 200
    key = response.context["key"]
    assert "no-store" in response["Cache-Control"]
    t = Terminal.objects.get(code="NEW-1")
    assert t.api_key_hash == api_key_hash(key) and key not in t.api_key_hash
    assert terminal_authenticate(code="NEW-1", key=key) == t
    assert AuditEntry.objects.get(action="terminal.create").object_id == "NEW-1"
    # A duplicate or malformed code is a clear form error, not a traceback.
    dup = client.post("/terminals/new/", {"code": "NEW-1"})
    assert dup.status_code == 400 and b"exists already" in dup.content
    assert client.post("/terminals/new/", {"code": "bad code!"}).status_code == 400


def test_edit_and_disable_enable_are_audited(login_as):
    t = TerminalFactory(code="E1", name="old")
    client = login_as("Terminal admins")
    assert client.post(f"/terminals/{t.pk}/edit/", {"name": "new", "store": "S"}).status_code == 302
    assert Terminal.objects.get(pk=t.pk).name == "new"
    response = client.post(f"/terminals/{t.pk}/enabled/", {"enabled": "0", "reason": "stolen"}, **HX)
    assert response.status_code == 200 and b"st-disabled" in response.content
    assert not Terminal.objects.get(pk=t.pk).enabled
    client.post(f"/terminals/{t.pk}/enabled/", {"enabled": "1"}, **HX)
    assert Terminal.objects.get(pk=t.pk).enabled
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "terminal.edit",
        "terminal.disable",
        "terminal.enable",
    ]
    assert AuditEntry.objects.get(action="terminal.disable").reason == "stolen"


def test_rotate_key_htmx_panel_and_old_key_dies(login_as):
    t = TerminalFactory(code="R1")
    from terminals.services import terminal_rotate_key

    old_key = terminal_rotate_key(terminal=t)
    client = login_as("Terminal admins")
    response = client.post(f"/terminals/{t.pk}/rotate-key/", {"reason": "leaked"}, **HX)
    assert response.status_code == 200 and b"<html" not in response.content
    new_key = response.context["key"]
    assert new_key.encode() in response.content
    assert terminal_authenticate(code="R1", key=old_key) is None
    assert terminal_authenticate(code="R1", key=new_key) is not None
    entry = AuditEntry.objects.get(action="terminal.rotate_key")
    assert entry.reason == "leaked" and new_key not in str(entry.detail)


@pytest.mark.parametrize("group", ["Support", "Viewers"])
def test_support_and_viewers_cannot_manage_terminals(login_as, group):
    t = TerminalFactory(code="P1")
    client = login_as(group)
    before = Terminal.objects.get(pk=t.pk).api_key_hash
    assert client.post(f"/terminals/{t.pk}/rotate-key/").status_code == 403
    assert client.post(f"/terminals/{t.pk}/enabled/", {"enabled": "0"}).status_code == 403
    assert client.get("/terminals/new/").status_code == 403
    assert client.post(f"/terminals/{t.pk}/edit/", {"name": "x"}).status_code == 403
    t.refresh_from_db()
    assert t.enabled and t.api_key_hash == before and not AuditEntry.objects.exists()


def test_superuser_can_do_everything(login_as):
    t = TerminalFactory(code="SU1")
    client = login_as("superuser")
    assert client.post(f"/terminals/{t.pk}/rotate-key/").status_code == 200
    assert client.get("/admin/").status_code == 200


# --- hostile input (issue 15) ----------------------------------------------------------------------


@pytest.mark.parametrize("per_page", ["-1", "0", str(-(2**63) - 1), "99999999"])
def test_page_size_is_the_consoles_not_the_requests(login_as, settings, per_page):
    settings.CONSOLE_PAGE_SIZE = 2
    for i in range(3):
        TerminalFactory(code=f"PP{i}")
    response = login_as("Viewers").get(f"/terminals/?per_page={per_page}")
    assert response.status_code == 200  # a negative per_page was EmptyPage: a 500
    assert len(response.context["table"].page.object_list) == 2


def test_unknown_status_and_invalid_search_say_so(login_as):
    TerminalFactory(code="S1")
    client = login_as("Viewers")
    response = client.get("/terminals/?status=bogus")
    assert response.status_code == 200 and b"unknown status" in response.content
    assert len(response.context["table"].page.object_list) == 1
    response = client.get("/terminals/?q=a%00b")
    assert b"Some filters are not valid" in response.content and len(response.context["table"].page.object_list) == 0


@pytest.mark.parametrize("action", ["enabled", "rotate-key"])
def test_invalid_reason_is_refused_not_dropped(login_as, action):
    t = TerminalFactory(code="NUL1")
    before = Terminal.objects.get(pk=t.pk).api_key_hash
    response = login_as("Terminal admins").post(f"/terminals/{t.pk}/{action}/", {"enabled": "0", "reason": "a\x00b"})
    assert response.status_code == 400 and b"reason is not valid" in response.content
    t.refresh_from_db()
    assert t.enabled and t.api_key_hash == before and not AuditEntry.objects.exists()


def test_store_hours_are_edited_with_a_validated_time_zone_and_audited(login_as):
    client = login_as("Terminal admins")
    t = TerminalFactory(code="HOURS1")
    url = f"/terminals/{t.pk}/edit/"
    data = {"name": "n", "store": "Queen St", "time_zone": "Pacific/Auckland"}
    data.update(opens_at="08:00", closes_at="21:30")
    assert client.post(url, data).status_code == 302
    t.refresh_from_db()
    assert (t.time_zone, str(t.opens_at), str(t.closes_at)) == ("Pacific/Auckland", "08:00:00", "21:30:00")
    entry = AuditEntry.objects.get(action="terminal.edit", object_id="HOURS1")
    assert entry.detail["after"]["time_zone"] == "Pacific/Auckland" and entry.detail["after"]["opens_at"] == "08:00:00"
    assert "08:00–21:30 Pacific/Auckland" in client.get(f"/terminals/{t.pk}/").content.decode()
    for bad in ({"time_zone": "Mars/Olympus"}, {"time_zone": "../../etc/passwd"}, {"opens_at": "25:00"},
                {"closes_at": ""}, {"closes_at": "08:00"}):  # fmt: skip
        response = client.post(url, {**data, **bad})
        assert response.status_code == 400 and b"errorlist" in response.content, bad
    t.refresh_from_db()
    assert t.time_zone == "Pacific/Auckland"
    cleared = {"name": "n", "store": "s", "time_zone": "", "opens_at": "", "closes_at": ""}
    assert client.post(url, cleared).status_code == 302
    t.refresh_from_db()
    assert (t.time_zone, t.opens_at, t.closes_at) == ("", None, None)
