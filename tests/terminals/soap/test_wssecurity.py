"""The WS-Security replay defence (terminals/soap/wssecurity.py), against a live server.

When a request carries a wsu:Timestamp or a Nonce/Created they are honoured: a Created more
than 5 minutes old or ahead, an Expires in the past, or a nonce the terminal already used
within the window is Client.AuthenticationFailed with nothing stored. Requests without them
keep working (WCF basicHttpBinding sends none over TLS).
"""

import base64
import os
from datetime import UTC, datetime, timedelta

import pytest
import requests
from zeep import Client, Settings
from zeep.exceptions import Fault
from zeep.transports import Transport

from messages.models import Message
from terminals.models import UsedNonce
from terminals.soap.wssecurity import Freshness, SecurityHeader, security_header_freshness
from tests.terminals.helpers import (
    FreshUsernameToken,
    envelope,
    fault_of,
    post_raw,
    replay_header,
    security_header,
    stock_message,
    wsu_time,
)

pytestmark = pytest.mark.django_db(transaction=True)


def submit(mid: str) -> str:
    return (
        f"<t:SubmitMessages><t:messages><t:SyncMessage><t:MessageId>{mid}</t:MessageId>"
        "<t:MessageType>product.upsert</t:MessageType><t:EntityKey>SKU-1</t:EntityKey><t:Sequence>1</t:Sequence>"
        f"<t:CreatedAt>{wsu_time(datetime.now(UTC))}</t:CreatedAt><t:Payload>{{}}</t:Payload>"
        "</t:SyncMessage></t:messages></t:SubmitMessages>"
    )


def call(soap_url, header: str, mid: str):
    return post_raw(soap_url, envelope(submit(mid), header))


def accepted(response, mid: str) -> bool:
    assert response.status_code == 200, response.text[:500]
    return Message.objects.filter(message_id=mid).exists()


def refused(response, mid: str, *phrases: str) -> bool:
    code, text = fault_of(response)
    assert code == "Client.AuthenticationFailed", text
    assert all(phrase in text for phrase in phrases), text
    return not Message.objects.filter(message_id=mid).exists()


def nonce() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def test_without_timestamp_or_nonce_requests_keep_working(term_a, soap_url):
    terminal, key = term_a
    assert accepted(call(soap_url, security_header(terminal.code, key), "plain-1"), "plain-1")
    assert accepted(call(soap_url, security_header(terminal.code, key), "plain-2"), "plain-2")
    assert not UsedNonce.objects.exists()


def test_a_fresh_timestamp_is_accepted_also_at_the_edges_of_the_window(term_a, soap_url):
    terminal, key = term_a
    now = datetime.now(UTC)
    for i, created in enumerate([now, now - timedelta(minutes=4), now + timedelta(minutes=4)]):
        header = replay_header(terminal.code, key, created=wsu_time(created), expires=wsu_time(now + timedelta(60)))
        assert accepted(call(soap_url, header, f"fresh-{i}"), f"fresh-{i}")


def test_a_timestamp_in_another_zone_is_read_exactly(term_a, soap_url):
    # Now, written at -05:30 (Newfoundland is -03:30, the Marquesas -09:30): spyne's reading of
    # such an offset was an hour off, which would make a fresh request look stale.
    terminal, key = term_a
    for i, minutes in enumerate([-330, -210, -570, 345]):
        local = datetime.now(UTC) + timedelta(minutes=minutes)
        sign = "-" if minutes < 0 else "+"
        created = local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        assert accepted(call(soap_url, replay_header(terminal.code, key, created=created), f"zone-{i}"), f"zone-{i}")


@pytest.mark.parametrize(
    ("where", "shift", "phrase"),
    [
        ("timestamp", -6, "more than 5 minutes old"),
        ("timestamp", +6, "more than 5 minutes ahead of the hub's clock"),
        ("token", -6, "more than 5 minutes old"),
        ("token", +6, "more than 5 minutes ahead of the hub's clock"),
    ],
)
def test_a_stale_or_ahead_created_is_refused_with_nothing_stored(term_a, soap_url, where, shift, phrase):
    terminal, key = term_a
    created = wsu_time(datetime.now(UTC) + timedelta(minutes=shift))
    if where == "timestamp":
        header = replay_header(terminal.code, key, created=created)
        label = "wsu:Timestamp/wsu:Created"
    else:
        header = replay_header(terminal.code, key, nonce=nonce(), token_created=created)
        label = "wsse:UsernameToken/wsu:Created"
    assert refused(call(soap_url, header, "stale"), "stale", label, phrase)
    assert not UsedNonce.objects.exists()  # a refused request's nonce is not kept


def test_an_expires_in_the_past_is_refused(term_a, soap_url):
    terminal, key = term_a
    now = datetime.now(UTC)
    header = replay_header(
        terminal.code, key, created=wsu_time(now - timedelta(minutes=2)), expires=wsu_time(now - timedelta(seconds=5))
    )
    assert refused(call(soap_url, header, "expired"), "expired", "wsu:Timestamp/wsu:Expires", "has passed")


@pytest.mark.parametrize("where", ["created", "token_created", "expires"])
def test_a_header_date_that_is_not_an_xs_datetime_is_an_invalid_request(term_a, soap_url, where):
    # The contract's "Dates and times": any dateTime that is not one is Client.InvalidRequest.
    terminal, key = term_a
    now = datetime.now(UTC)
    dates = {"created": wsu_time(now), "expires": wsu_time(now + timedelta(minutes=5))}
    dates[where] = wsu_time(now) + "junk"
    response = call(soap_url, replay_header(terminal.code, key, **dates), "junk")
    code, text = fault_of(response)
    assert code == "Client.InvalidRequest", text
    assert "is not an xs:dateTime" in text and "Zjunk" in text
    assert not Message.objects.filter(message_id="junk").exists()


def test_a_reused_nonce_is_refused_and_another_terminal_may_use_it(term_a, term_b, soap_url):
    (ta, key_a), (tb, key_b) = term_a, term_b
    same = nonce()
    created = wsu_time(datetime.now(UTC))
    first = call(soap_url, replay_header(ta.code, key_a, nonce=same, token_created=created), "n-1")
    assert accepted(first, "n-1")
    # The very same header again (a replay), and the nonce with a new Created: both refused.
    replay = call(soap_url, replay_header(ta.code, key_a, nonce=same, token_created=created), "n-2")
    assert refused(replay, "n-2", "wsse:Nonce was already used")
    again = call(soap_url, replay_header(ta.code, key_a, nonce=same, token_created=wsu_time(datetime.now(UTC))), "n-3")
    assert refused(again, "n-3", "wsse:Nonce was already used")
    assert list(Message.objects.values_list("message_id", flat=True)) == ["n-1"]
    # Nonces are per terminal.
    other = call(soap_url, replay_header(tb.code, key_b, nonce=same, token_created=created), "n-4")
    assert accepted(other, "n-4")


def test_a_bad_key_gets_the_plain_fault_whatever_the_timestamp_says(term_a, soap_url):
    terminal, _ = term_a
    stale = wsu_time(datetime.now(UTC) - timedelta(hours=1))
    response = call(soap_url, replay_header(terminal.code, "wrong-key", created=stale, nonce=nonce()), "bad")
    assert fault_of(response) == ("Client.AuthenticationFailed", "authentication failed")
    assert not UsedNonce.objects.exists()


def test_a_zeep_client_sending_a_nonce_and_created_works_and_a_replayed_nonce_is_refused(term_a, soap_url):
    terminal, key = term_a
    clients = []

    def client(token):
        session = requests.Session()
        made = Client(
            soap_url + "?wsdl", transport=Transport(session=session), wsse=token, settings=Settings(strict=True)
        )
        clients.append(session)
        return made

    try:
        fresh = client(FreshUsernameToken(terminal.code, key))
        for mid in ("z-1", "z-2"):  # a new nonce every call
            assert [r.Status for r in fresh.service.SubmitMessages(messages={"SyncMessage": [stock_message(mid)]})] == [
                "Accepted"
            ]
        assert UsedNonce.objects.filter(terminal=terminal).count() == 2
        stuck = client(FreshUsernameToken(terminal.code, key, nonce=b"0123456789abcdef"))
        assert stuck.service.Heartbeat(info={"AppVersion": "1"}).PendingUpdates == 0
        with pytest.raises(Fault) as exc:
            stuck.service.SubmitMessages(messages={"SyncMessage": [stock_message("z-3")]})
        assert str(exc.value.code).endswith("Client.AuthenticationFailed")
        assert "wsse:Nonce was already used" in exc.value.message
        assert sorted(Message.objects.values_list("message_id", flat=True)) == ["z-1", "z-2"]
    finally:
        for session in clients:
            session.close()


def test_a_nonce_is_kept_until_no_request_carrying_it_could_pass():
    # A Created 4 minutes ahead stays acceptable for 9 minutes: its nonce must be kept that long,
    # or a replay in minute 6 would pass both checks.
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    ahead = SecurityHeader(nonce="n", created=[("wsse:UsernameToken/wsu:Created", "2026-01-01T12:04:00Z")])
    assert security_header_freshness(ahead, now=now) == Freshness(None, now + timedelta(minutes=9))
    bare = SecurityHeader(nonce="n")
    assert security_header_freshness(bare, now=now) == Freshness(None, now + timedelta(minutes=5))
    assert security_header_freshness(SecurityHeader(nonce=" \n"), now=now).problem == "wsse:Nonce is empty"
    assert security_header_freshness(SecurityHeader(), now=now).problem is None
