"""Every operation of the terminal SOAP API, through zeep against the served WSDL on a live server."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.test import Client
from lxml import etree
from zeep.exceptions import Fault

from messages import outbound
from messages.models import Message, MessageState, OutboundUpdate, UpdateState
from reconciliation.models import ReportedCount
from reconciliation.selectors import reported_latest
from terminals.models import Terminal
from terminals.services import terminal_rotate_key
from tests.factories import MessageFactory
from tests.terminals.helpers import code_of, envelope, fault_of, post_raw, security_header

pytestmark = pytest.mark.django_db(transaction=True)

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
OPERATIONS = ["SubmitMessages", "GetMessageStatus", "FetchUpdates", "AckUpdates", "Heartbeat", "ReportCounts"]


def msg(mid, key="SKU-1", seq=1, mtype="product.upsert", payload=None, **extra):
    m = {
        "MessageId": mid,
        "MessageType": mtype,
        "EntityKey": key,
        "Sequence": seq,
        "CreatedAt": datetime.now(UTC),
        "Payload": json.dumps(payload if payload is not None else {"sku": key, "name": "Tea"}),
    }
    m.update(extra)
    return m


# --- the WSDL ---------------------------------------------------------------------------------------


def test_wsdl_has_the_contract_names_and_declares_the_security_header(soap_url):
    response = requests.get(soap_url + "?wsdl", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    assert root.get("targetNamespace") == "urn:syncadmin:terminal:v1"
    services = root.findall(f"{{{WSDL_NS}}}service")
    assert [s.get("name") for s in services] == ["TerminalSyncService"]
    port_ops = {op.get("name") for op in root.iter(f"{{{WSDL_NS}}}operation")}
    assert set(OPERATIONS) <= port_ops
    types = {t.get("name") for t in root.iter(f"{{{XSD_NS}}}complexType")}
    for name in ["SyncMessage", "SyncMessageArray", "stringArray", "EntityCountArray", "SubmitResult", "Update"]:
        assert name in types, name
    # The SyncMessageArray's items are named after the item type (the zeep/WCF array shape).
    array = next(t for t in root.iter(f"{{{XSD_NS}}}complexType") if t.get("name") == "SyncMessageArray")
    assert [e.get("name") for e in array.iter(f"{{{XSD_NS}}}element")] == ["SyncMessage"]
    # Every operation's input declares the WS-Security header, and the reference resolves.
    headers = list(root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}header"))
    assert len(headers) == len(OPERATIONS)
    messages = {m.get("name") for m in root.findall(f"{{{WSDL_NS}}}message")}
    for h in headers:
        prefix, _, local = h.get("message").partition(":")
        assert h.nsmap[prefix] == "urn:syncadmin:terminal:v1" and local in messages
    assert b"oasis-200401-wss-wssecurity-secext-1.0.xsd" in response.content


# --- SubmitMessages ----------------------------------------------------------------------------------


def test_submit_answers_per_message_in_order_and_stores_the_accepted(term_a, zeep_client):
    terminal, key = term_a
    client = zeep_client(terminal.code, key)
    batch = [
        msg("m1"),
        msg("m2", payload={"broken": True}, Payload="{not json"),  # stored anyway: the workers dead-letter it
        msg(None),  # cannot be stored
        msg("m3", mtype="question.delete"),
        msg("m1"),  # repeated inside the batch
        msg("x" * 65),
    ]
    results = client.service.SubmitMessages(messages={"SyncMessage": batch})
    assert [(r.MessageId, r.Status) for r in results] == [
        ("m1", "Accepted"),
        ("m2", "Accepted"),
        (None, "Rejected"),
        ("m3", "Accepted"),
        ("m1", "Duplicate"),
        ("x" * 65, "Rejected"),
    ]
    assert results[2].Reason == "MessageId is missing"
    assert "longer than 64" in results[5].Reason
    stored = {m.message_id: m for m in Message.objects.filter(terminal=terminal)}
    assert set(stored) == {"m1", "m2", "m3"}
    assert stored["m2"].payload == "{not json"
    assert stored["m1"].state == MessageState.RECEIVED and stored["m1"].trace_id
    terminal.refresh_from_db()
    assert terminal.last_seen_at is not None


def test_resubmitting_a_batch_answers_duplicate_and_stores_nothing_new(term_a, zeep_client):
    terminal, key = term_a
    client = zeep_client(terminal.code, key)
    batch = [msg(f"r{i}", key=f"SKU-{i}", seq=i + 1) for i in range(5)]
    first = client.service.SubmitMessages(messages={"SyncMessage": batch})
    assert [r.Status for r in first] == ["Accepted"] * 5
    before = list(Message.objects.order_by("pk").values_list("pk", "message_id", "received_at"))
    again = client.service.SubmitMessages(messages={"SyncMessage": batch})
    assert [(r.MessageId, r.Status) for r in again] == [(f"r{i}", "Duplicate") for i in range(5)]
    assert list(Message.objects.order_by("pk").values_list("pk", "message_id", "received_at")) == before


def test_a_naive_created_at_is_taken_as_utc(term_a, soap_url):
    terminal, key = term_a
    body = (
        "<t:SubmitMessages><t:messages><t:SyncMessage><t:MessageId>n1</t:MessageId>"
        "<t:MessageType>stock.upsert</t:MessageType><t:EntityKey>SKU-9</t:EntityKey><t:Sequence>4</t:Sequence>"
        "<t:CreatedAt>2025-03-01T10:00:00</t:CreatedAt><t:Payload>{}</t:Payload></t:SyncMessage></t:messages>"
        "</t:SubmitMessages>"
    )
    response = post_raw(soap_url, envelope(body, security_header(terminal.code, key)))
    assert response.status_code == 200, response.text
    m = Message.objects.get(message_id="n1")
    assert m.created_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC) and m.sequence == 4


# --- GetMessageStatus -----------------------------------------------------------------------------------


def test_get_message_status_reports_known_and_unknown_in_order(term_a, zeep_client):
    terminal, key = term_a
    MessageFactory(terminal=terminal, message_id="s1")
    MessageFactory(terminal=terminal, message_id="s2", state=MessageState.DEAD_LETTERED, attempts=3, last_error="boom")
    client = zeep_client(terminal.code, key)
    out = client.service.GetMessageStatus(messageIds={"string": ["s2", "nope", "s1"]})
    assert [(s.MessageId, s.State, s.Attempts) for s in out] == [
        ("s2", "DeadLettered", 3),
        ("nope", "Unknown", 0),
        ("s1", "Received", 0),
    ]
    assert out[0].LastError == "boom" and out[0].UpdatedAt is not None
    assert out[1].UpdatedAt is None


# --- FetchUpdates / AckUpdates ---------------------------------------------------------------------------


def test_fetch_delivers_oldest_first_and_ack_is_idempotent(term_a, zeep_client):
    terminal, key = term_a
    u1 = outbound.update_create(terminal=terminal, update_type="price.set", entity_key="SKU-1", payload='{"p": 1}')
    u2 = outbound.update_create(terminal=terminal, update_type="resync", payload="{}")
    client = zeep_client(terminal.code, key)
    fetched = client.service.FetchUpdates(maxCount=1)
    assert [(u.UpdateId, u.UpdateType, u.EntityKey, u.Payload) for u in fetched] == [
        (u1.update_id, "price.set", "SKU-1", '{"p": 1}')
    ]
    assert OutboundUpdate.objects.get(pk=u1.pk).state == UpdateState.DELIVERED
    # Delivered but not acknowledged: handed out again (a lost reply cannot lose an update).
    assert [u.UpdateId for u in client.service.FetchUpdates(maxCount=10)] == [u1.update_id, u2.update_id]
    assert client.service.AckUpdates(updateIds={"string": [u1.update_id, u2.update_id]}) == 2
    assert client.service.AckUpdates(updateIds={"string": [u1.update_id]}) == 0
    assert set(OutboundUpdate.objects.values_list("state", flat=True)) == {UpdateState.ACKNOWLEDGED}
    assert client.service.FetchUpdates(maxCount=10) in (None, [])


@pytest.mark.parametrize("max_count", [0, 501, -3])
def test_fetch_updates_refuses_a_max_count_out_of_range(term_a, zeep_client, max_count):
    terminal, key = term_a
    with pytest.raises(Fault) as exc:
        zeep_client(terminal.code, key).service.FetchUpdates(maxCount=max_count)
    assert code_of(exc.value) == "Client.InvalidRequest"


# --- Heartbeat / ReportCounts -------------------------------------------------------------------------------


def test_heartbeat_records_version_backlog_and_clock_skew(term_a, zeep_client):
    terminal, key = term_a
    outbound.update_create(terminal=terminal, update_type="resync")
    ahead = datetime.now(UTC) + timedelta(seconds=90)
    reply = zeep_client(terminal.code, key).service.Heartbeat(
        info={"AppVersion": "4.2.1", "LocalBacklog": 17, "TerminalTime": ahead}
    )
    assert reply.PendingUpdates == 1
    assert abs((reply.ServerTime - datetime.now(UTC)).total_seconds()) < 30
    terminal.refresh_from_db()
    assert (terminal.app_version, terminal.reported_backlog) == ("4.2.1", 17)
    assert 80 < terminal.clock_skew_seconds < 100
    assert terminal.last_heartbeat_at is not None and terminal.last_seen_at is not None


def test_report_counts_stores_each_count_with_its_as_of(term_a, zeep_client):
    terminal, key = term_a
    as_of = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    counts = [
        {"EntityType": "product", "Count": 120, "AsOf": as_of},
        {"EntityType": "stock", "Count": 2**40, "AsOf": as_of},
    ]
    assert zeep_client(terminal.code, key).service.ReportCounts(counts={"EntityCount": counts}) == 2
    rows = sorted(ReportedCount.objects.filter(terminal=terminal).values_list("entity_type", "count", "as_of"))
    assert rows == [("product", 120, as_of), ("stock", 2**40, as_of)]


def test_report_counts_with_a_missing_field_is_refused_whole(term_a, zeep_client):
    terminal, key = term_a
    counts = [{"EntityType": "product", "Count": 1, "AsOf": datetime.now(UTC)}, {"EntityType": "", "Count": 2}]
    with pytest.raises(Fault) as exc:
        zeep_client(terminal.code, key).service.ReportCounts(counts={"EntityCount": counts})
    assert code_of(exc.value) == "Client.InvalidRequest"
    assert not ReportedCount.objects.exists()


def test_report_counts_dated_in_the_future_is_refused_whole_and_never_pins_the_latest(term_a, zeep_client):
    terminal, key = term_a
    client = zeep_client(terminal.code, key)
    now = datetime.now(UTC)
    for future in [datetime(9999, 12, 31, tzinfo=UTC), now + timedelta(seconds=1000)]:
        counts = [
            {"EntityType": "stock", "Count": 1, "AsOf": now},
            {"EntityType": "product", "Count": 999, "AsOf": future},
        ]
        with pytest.raises(Fault) as exc:
            client.service.ReportCounts(counts={"EntityCount": counts})
        assert code_of(exc.value) == "Client.InvalidRequest"
        assert "count 1: AsOf" in exc.value.message and "in the future: more than 900 s ahead" in exc.value.message
    assert not ReportedCount.objects.exists()  # nothing of the call is stored
    # A clock within the allowance is fine, and the next report wins as it should.
    assert (
        client.service.ReportCounts(counts={"EntityCount": [{"EntityType": "product", "Count": 5, "AsOf": now}]}) == 1
    )
    later = now + timedelta(seconds=60)
    assert client.service.ReportCounts(counts={"EntityCount": [{"EntityType": "product", "Count": 6, "AsOf": later}]})
    assert reported_latest()[(terminal.code, "product")].count == 6


def test_a_heartbeat_from_a_terminal_clock_far_ahead_is_refused(term_a, zeep_client, caplog):
    terminal, key = term_a
    caplog.set_level("WARNING", logger="terminals.soap")
    with pytest.raises(Fault) as exc:
        zeep_client(terminal.code, key).service.Heartbeat(
            info={"AppVersion": "4.2.1", "LocalBacklog": 1, "TerminalTime": datetime.now(UTC) + timedelta(hours=2)}
        )
    assert code_of(exc.value) == "Client.InvalidRequest"
    assert "TerminalTime" in exc.value.message and "more than 900 s ahead of the hub's clock" in exc.value.message
    terminal.refresh_from_db()
    assert (terminal.last_heartbeat_at, terminal.app_version, terminal.clock_skew_seconds) == (None, "", None)
    # Nothing of it is stored, so the log is where support sees why this terminal's heartbeats stopped.
    assert [r.getMessage() for r in caplog.records if r.name == "terminals.soap" and r.levelname == "WARNING"] == [
        f"heartbeat refused: terminal={terminal.code}: {exc.value.message}"
    ]


# --- tenant isolation ----------------------------------------------------------------------------------------


def test_a_terminal_cannot_see_or_ack_another_terminals_messages_or_updates(term_a, term_b, zeep_client):
    (ta, key_a), (tb, key_b) = term_a, term_b
    MessageFactory(terminal=ta, message_id="shared-id", state=MessageState.PROCESSED)
    update_a = outbound.update_create(terminal=ta, update_type="price.set", entity_key="SKU-1")
    b = zeep_client(tb.code, key_b)
    assert [(s.MessageId, s.State) for s in b.service.GetMessageStatus(messageIds={"string": ["shared-id"]})] == [
        ("shared-id", "Unknown")
    ]
    assert b.service.FetchUpdates(maxCount=500) in (None, [])
    assert b.service.AckUpdates(updateIds={"string": [update_a.update_id]}) == 0
    assert OutboundUpdate.objects.get(pk=update_a.pk).state == UpdateState.PENDING
    # B may use the same MessageId as A: ids are unique per terminal, and each sees its own.
    assert [r.Status for r in b.service.SubmitMessages(messages={"SyncMessage": [msg("shared-id")]})] == ["Accepted"]
    a = zeep_client(ta.code, key_a)
    assert [s.State for s in a.service.GetMessageStatus(messageIds={"string": ["shared-id"]})] == ["Processed"]
    assert [s.State for s in b.service.GetMessageStatus(messageIds={"string": ["shared-id"]})] == ["Received"]


# --- authentication -------------------------------------------------------------------------------------------


def test_wrong_key_unknown_terminal_and_missing_header_get_the_same_fault(term_a, zeep_client, caplog):
    terminal, key = term_a
    caplog.set_level(logging.INFO)
    faults = []
    for code, presented in [(terminal.code, "wrong-key-xyz"), ("NOBODY", key), ("", None)]:
        with pytest.raises(Fault) as exc:
            zeep_client(code, presented).service.FetchUpdates(maxCount=1)
        faults.append((code_of(exc.value), exc.value.message))
    assert faults == [("Client.AuthenticationFailed", "authentication failed")] * 3
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "terminals.soap")
    assert "code='TA' client=127.0.0.1" in logged and "code='NOBODY' client=127.0.0.1" in logged
    assert "wrong-key-xyz" not in caplog.text and key not in caplog.text


def test_refusal_log_lines_name_the_client_behind_the_proxy(term_a, caplog, settings):
    """Behind nginx the log names the terminal's address (X-Forwarded-For from the trusted proxy),
    as the /metrics allow-list and the login lockouts do - never the proxy's, nor a forged one."""
    settings.SYNC_TRUSTED_PROXIES = ["127.0.0.1"]
    terminal, _ = term_a
    caplog.set_level(logging.INFO)
    fetch = "<t:FetchUpdates><t:maxCount>1</t:maxCount></t:FetchUpdates>"
    via_proxy = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    direct = Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.8")
    for client in (via_proxy, direct):
        client.post("/soap/terminal/v1/", envelope(fetch, security_header(terminal.code, "wrong")), "text/xml")
        client.post("/soap/terminal/v1/", envelope(fetch, prolog="<!DOCTYPE e []>"), "text/xml")
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("terminals.soap")]
    assert sum("client=198.51.100.7" in line for line in logged) == 1, logged
    assert sum("client=203.0.113.9" in line for line in logged) == 1, logged
    assert sum(line.endswith("refused from 198.51.100.7") for line in logged) == 1, logged
    assert sum(line.endswith("refused from 203.0.113.9") for line in logged) == 1, logged
    assert not any("198.51.100.8" in line or "127.0.0.1" in line for line in logged), logged


def test_a_disabled_terminal_is_refused(term_a, zeep_client):
    terminal, key = term_a
    Terminal.objects.filter(pk=terminal.pk).update(enabled=False)
    with pytest.raises(Fault) as exc:
        zeep_client(terminal.code, key).service.SubmitMessages(messages={"SyncMessage": [msg("d1")]})
    assert code_of(exc.value) == "Client.TerminalDisabled"
    assert not Message.objects.exists()


def test_a_rotated_key_replaces_the_old_one(term_a, zeep_client):
    terminal, old = term_a
    new = terminal_rotate_key(terminal=terminal)
    with pytest.raises(Fault) as exc:
        zeep_client(terminal.code, old).service.FetchUpdates(maxCount=1)
    assert code_of(exc.value) == "Client.AuthenticationFailed"
    assert zeep_client(terminal.code, new).service.Heartbeat(info={"AppVersion": "1"}).PendingUpdates == 0


def test_a_password_digest_is_not_accepted_as_the_key(term_a, soap_url):
    terminal, key = term_a
    header = security_header(terminal.code, key).replace("#PasswordText", "#PasswordDigest")
    response = post_raw(soap_url, envelope("<t:FetchUpdates><t:maxCount>1</t:maxCount></t:FetchUpdates>", header))
    assert fault_of(response)[0] == "Client.AuthenticationFailed"


def test_a_wcf_style_header_with_must_understand_is_accepted(term_a, soap_url):
    terminal, key = term_a
    # What WCF sends: mustUnderstand="1", a wsu:Timestamp (Created, Expires 5 minutes later, 7
    # fraction digits) and wsu:Id attributes around the token.
    wsu = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    now = datetime.now(UTC)
    created = now.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    expires = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    header = security_header(terminal.code, key, must_understand=True).replace(
        "<wsse:UsernameToken>",
        f'<u:Timestamp xmlns:u="{wsu}" u:Id="_0"><u:Created>{created}</u:Created>'
        f"<u:Expires>{expires}</u:Expires></u:Timestamp>"
        f'<wsse:UsernameToken xmlns:u="{wsu}" u:Id="uuid-1">',
    )
    assert 'mustUnderstand="1"' in header
    body = (
        "<t:SubmitMessages><t:messages><t:SyncMessage><t:MessageId>wcf-1</t:MessageId>"
        "<t:MessageType>product.upsert</t:MessageType><t:EntityKey>SKU-1</t:EntityKey><t:Sequence>1</t:Sequence>"
        "<t:CreatedAt>2025-01-01T00:00:00Z</t:CreatedAt><t:Payload>{}</t:Payload></t:SyncMessage></t:messages>"
        "</t:SubmitMessages>"
    )
    response = post_raw(soap_url, envelope(body, header))
    assert response.status_code == 200, response.text
    assert b"Accepted" in response.content
    assert Message.objects.filter(terminal=terminal, message_id="wcf-1").exists()


def test_only_the_soap_view_is_csrf_exempt(client, transactional_db):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True, HTTP_HOST="localhost")
    assert strict.post("/admin/login/", {"username": "x", "password": "y"}).status_code == 403
