"""messages/views/triage.py and the dead-letter page's triage: the group page, triage, take it, the status and
owner filters, the superseded badge and count, and the discard of the superseded ones (issue 20)."""

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages.models import CentralEntity, DeadLetterGroupEvent, DeadLetterGroupNote, Message, MessageState
from messages.services.triage import deadletter_group_triage_set
from syncadmin.models import AuditEntry
from tests.factories import DeadLetterFactory, TerminalFactory

S = MessageState
pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "bulk-panel"}
KEY = "ValueError: price # is negative"
GROUP = "/dead-letters/group/?" + urlencode({"by": "reason", "key": KEY})


def stored(terminal, key, seq):
    CentralEntity.objects.create(
        entity_type="product", entity_key=key, terminal_code=terminal.code, data={}, last_sequence=seq,
        updated_at=datetime.now(UTC),
    )  # fmt: skip


def groups(response):
    return {g["key"]: g for g in response.context["table"].data.data}


def test_a_viewer_sees_a_group_its_triage_and_history_but_no_control(login_as):
    DeadLetterFactory()
    deadletter_group_triage_set(grouping="reason", key=KEY, actor="user:sam", status="on_hold", owner="sam")
    page = login_as("Viewers").get(GROUP)
    assert page.status_code == 200
    body = page.content.decode()
    assert "On hold" in body and 'id="triage-owner">sam<' in body and "New → On hold" in body
    assert "triage-form" not in body and "take-it" not in body and "Take it" not in body


def test_support_triages_a_group_and_a_bad_ticket_link_is_a_form_error(login_as):
    DeadLetterFactory()
    client = login_as("Support")
    data = {"by": "reason", "key": KEY, "status": "investigating", "owner": "support", "note": "HQ price list"}
    bad = client.post("/dead-letters/group/triage/", {**data, "ticket_url": "javascript:alert(1)"})
    assert bad.status_code == 200 and "ticket-error" in bad.content.decode()
    assert not DeadLetterGroupNote.objects.exists()
    ok = client.post("/dead-letters/group/triage/", {**data, "ticket_url": "https://jira.example/OPS-7"})
    assert ok.status_code == 302 and ok["Location"] == GROUP
    triage = DeadLetterGroupNote.objects.get()
    assert (triage.status, triage.owner, triage.ticket_url) == (
        "investigating",
        "support",
        "https://jira.example/OPS-7",
    )
    assert AuditEntry.objects.get(action="deadletter.triage").actor == "user:support"
    assert DeadLetterGroupEvent.objects.count() == 1


def test_take_it_from_the_list_and_filter_by_owner_and_status(login_as):
    DeadLetterFactory()
    DeadLetterFactory(group_key="KeyError: 'sku'")
    DeadLetterFactory(group_key="TypeError: x")
    deadletter_group_triage_set(grouping="reason", key="TypeError: x", actor="user:ann", status="on_hold", owner="ann")
    client = login_as("Support")
    taken = client.post("/dead-letters/group/take/", {"by": "reason", "key": KEY, "back": "list"})
    assert taken.status_code == 302 and taken["Location"] == "/dead-letters/?by=reason"
    assert set(groups(client.get("/dead-letters/?owner=mine"))) == {KEY}
    assert set(groups(client.get("/dead-letters/?owner=nobody"))) == {"KeyError: 'sku'"}
    assert set(groups(client.get("/dead-letters/?owner=ann"))) == {"TypeError: x"}
    assert set(groups(client.get("/dead-letters/?status=new"))) == {"KeyError: 'sku'"}
    assert set(groups(client.get("/dead-letters/?status=investigating"))) == {KEY}
    assert set(groups(client.get("/dead-letters/?status=on_hold&by=reason"))) == {"TypeError: x"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.text(max_size=30), owner=st.text(max_size=200), by=st.text(max_size=20))
def test_any_filter_value_is_a_page_never_a_500(login_as, status, owner, by):
    client = login_as("Viewers")
    response = client.get("/dead-letters/", {"status": status, "owner": owner, "by": by})
    assert response.status_code == 200


@given(by=st.text(max_size=20), key=st.text(max_size=300))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_group_address_is_a_page_or_a_400(login_as, by, key):
    response = login_as("Viewers").get("/dead-letters/group/", {"by": by, "key": key})
    assert response.status_code in (200, 400)


def test_superseded_dead_letters_are_counted_badged_and_discarded_with_the_reason_filled_in(login_as):
    t = TerminalFactory(code="SUP-T1")
    old = DeadLetterFactory(message__terminal=t, message__entity_key="K1", message__sequence=3).message
    live = DeadLetterFactory(message__terminal=t, message__entity_key="K2", message__sequence=9).message
    stored(t, "K1", 5)
    stored(t, "K2", 8)
    client = login_as("Support")
    assert groups(client.get("/dead-letters/"))[KEY]["superseded"] == 1
    listing = client.get("/messages/?state=DeadLettered").content.decode()
    assert listing.count('class="badge superseded"') == 1
    assert 'id="superseded-count"' in client.get(GROUP).content.decode()

    ask = client.post("/dead-letters/superseded/", {"by": "reason", "key": KEY}, **HX)
    assert ask.templates[0].name == "messages/_superseded_panel.html"
    assert ask.context["count"] == 1 and ask.context["examined"] == 2
    assert ask.context["reason"].startswith("superseded: the entity already holds sequence 5 from the same terminal")
    assert Message.objects.get(pk=old.pk).state == S.DEAD_LETTERED  # asking changes nothing

    done = client.post(
        "/dead-letters/superseded/",
        {"by": "reason", "key": KEY, "confirmed": "1", "reason": ask.context["reason"]},
        **HX,
    )
    assert done.context["done"] == 1 and done["HX-Trigger"] == "messagesChanged"
    assert Message.objects.get(pk=old.pk).state == S.DISCARDED
    assert Message.objects.get(pk=live.pk).state == S.DEAD_LETTERED
    assert AuditEntry.objects.get(action="message.discard").detail["group"] == {"grouping": "reason", "key": KEY}


def test_a_selection_from_the_message_list_and_a_missing_reason(login_as):
    t = TerminalFactory(code="SUP-T2")
    old = DeadLetterFactory(message__terminal=t, message__entity_key="K1", message__sequence=3).message
    stored(t, "K1", 3)  # the same sequence already applied: a retry is a no-op
    client = login_as("Support")
    page = client.post("/dead-letters/superseded/", {"select": [old.pk]})  # without htmx: a whole page
    assert page.templates[0].name == "messages/superseded.html" and page.context["count"] == 1
    refused = client.post("/dead-letters/superseded/", {"select": [old.pk], "confirmed": "1", "reason": " "}, **HX)
    assert refused.status_code == 400 and "reason" in refused.context["errors"]
    assert client.post("/dead-letters/superseded/", {"select": ["x"]}, **HX).status_code == 400
    assert client.post("/dead-letters/superseded/", {}, **HX).status_code == 400
    assert Message.objects.get(pk=old.pk).state == S.DEAD_LETTERED
