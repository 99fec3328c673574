"""Scenario 8: a hostile-input corpus and property-based fuzzing against the real gunicorn.

Every hostile request must get a text/xml SOAP 1.1 fault carrying the contract's code (never
an HTML page, never a 200 with silently emptied fields); no row may be written; no outbound
connection may be made (a loopback listener counts them); the canary file's content must
appear nowhere (answers, logs); a 2 MB malformed body must cost under 4 KB of log; no API key
is ever logged.
"""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from tests.chaos.conftest import LONG
from tests.terminals.helpers import SOAP_ENV, FetchListener, envelope, post_raw, security_header

pytestmark = pytest.mark.chaos

NS = "urn:syncadmin:terminal:v1"
CANARY = "CANARY-" + uuid.uuid4().hex


@pytest.fixture
def hostile(stack):
    web = stack.start_web(workers=2)
    code, key = stack.create_terminals(1).popitem()
    canary = Path(stack.workdir) / "canary.txt"
    canary.write_text(CANARY)
    listener = FetchListener()
    yield stack, web, stack.soap_url(web), code, key, canary, listener
    listener.close()


def fault_code(response: requests.Response) -> str:
    assert response.headers.get("Content-Type", "").startswith("text/xml"), (
        response.status_code,
        response.headers.get("Content-Type"),
        response.text[:300],
    )
    assert response.status_code == 500, (response.status_code, response.text[:300])
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, response.text[:300]
    return fault.findtext("faultcode").rpartition(":")[2]


def sync_message(mid="m1", mtype="product.upsert", key="SKU-1", seq="1", created=None, payload="{}") -> str:
    created = created or datetime.now(UTC).isoformat()
    return (
        f"<t:SyncMessage><t:MessageId>{mid}</t:MessageId><t:MessageType>{mtype}</t:MessageType>"
        f"<t:EntityKey>{key}</t:EntityKey><t:Sequence>{seq}</t:Sequence><t:CreatedAt>{created}</t:CreatedAt>"
        f"<t:Payload>{payload}</t:Payload></t:SyncMessage>"
    )


def submit(*messages: str) -> str:
    return f"<t:SubmitMessages><t:messages>{''.join(messages)}</t:messages></t:SubmitMessages>"


LAUGHS = "".join(
    f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' if i else '<!ENTITY lol0 "lol">' for i in range(10)
)


def corpus(code: str, key: str, canary: Path, listener: str) -> list[tuple[str, bytes, str]]:
    """(name, body, expected fault code) for every hostile request."""
    auth = security_header(code, key)
    ok = sync_message()

    def env(body: str, prolog: str = "") -> bytes:
        return envelope(body, auth, prolog=prolog).encode()

    deep = lambda n: "<a>" * n + "x" + "</a>" * n  # noqa: E731
    items = [
        ("billion laughs", env(submit(sync_message(payload="&lol9;")), f"<!DOCTYPE l [{LAUGHS}]>"), "ForbiddenXml"),
        (
            "billion laughs utf-16",
            envelope(
                submit(sync_message(payload="&lol9;")),
                auth,
                f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE l [{LAUGHS}]>',
            ).encode("utf-16"),
            "ForbiddenXml",
        ),
        (
            "XXE to the canary file",
            env(submit(sync_message(payload="&x;")), f'<!DOCTYPE e [<!ENTITY x SYSTEM "file://{canary}">]>'),
            "ForbiddenXml",
        ),
        (
            "XXE to a loopback listener",
            env(submit(sync_message(payload="&x;")), f'<!DOCTYPE e [<!ENTITY x SYSTEM "{listener}/xxe">]>'),
            "ForbiddenXml",
        ),
        (
            "parameter entities",
            env(submit(ok), f'<!DOCTYPE e [<!ENTITY % p SYSTEM "{listener}/param"> %p;]>'),
            "ForbiddenXml",
        ),
        ("external DTD subset", env(submit(ok), f'<!DOCTYPE e SYSTEM "{listener}/subset.dtd">'), "ForbiddenXml"),
        ("PUBLIC DTD", env(submit(ok), f'<!DOCTYPE e PUBLIC "-//X//Y" "{listener}/public.dtd">'), "ForbiddenXml"),
        (
            "DOCTYPE after a comment",
            env(submit(ok), f'<!-- hi --><!DOCTYPE e [<!ENTITY x SYSTEM "file://{canary}">]>'),
            "ForbiddenXml",
        ),
        (
            "XInclude of the canary in the payload",
            env(
                submit(
                    sync_message(
                        payload='<xi:include xmlns:xi="http://www.w3.org/2001/XInclude"'
                        f' href="file://{canary}" parse="text"/>'
                    )
                )
            ),
            "InvalidRequest",
        ),
        (
            "XInclude to the listener in the body",
            env(f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{listener}/xinclude"/>'),
            "InvalidRequest",
        ),
        ("300 nesting levels in the payload", env(submit(sync_message(payload=deep(300)))), "InvalidRequest"),
        ("100,000 nesting levels", env(submit(sync_message(payload=deep(100_000)))), "InvalidRequest"),
        ("element inside MessageId", env(submit(sync_message(mid="<b>m</b>"))), "InvalidRequest"),
        ("malformed: unclosed", env(submit(ok))[:-40], "InvalidRequest"),
        ("malformed: garbage", b"\x00\xff\xfe garbage <<<", "InvalidRequest"),
        ("malformed: empty body", b"", "InvalidRequest"),
        ("not SOAP", b"<hello/>", "InvalidRequest"),
        ("unknown operation", env("<t:DropTables/>"), "InvalidRequest"),
        ("Sequence not a number", env(submit(sync_message(seq="abc"))), "InvalidRequest"),
        ("Sequence beyond int64", env(submit(sync_message(seq="9" * 30))), "InvalidRequest"),
        ("CreatedAt not a date", env(submit(sync_message(created="yesterday"))), "InvalidRequest"),
        (
            "maxCount not a number",
            env("<t:FetchUpdates><t:maxCount>lots</t:maxCount></t:FetchUpdates>"),
            "InvalidRequest",
        ),
        (
            "maxCount out of range",
            env("<t:FetchUpdates><t:maxCount>100000</t:maxCount></t:FetchUpdates>"),
            "InvalidRequest",
        ),
        ("control character in MessageId", env(submit(sync_message(mid="m\x01"))), "InvalidRequest"),
        ("control character reference in payload", env(submit(sync_message(payload="&#1;"))), "InvalidRequest"),
        ("NUL in payload", env(submit(sync_message(payload="a\x00b"))), "InvalidRequest"),
        ("NUL reference in MessageId", env(submit(sync_message(mid="m&#0;"))), "InvalidRequest"),
        (
            "huge username",
            envelope(submit(ok), security_header("U" * 1_000_000, key)).encode(),
            "AuthenticationFailed",
        ),
        (
            "huge password",
            envelope(submit(ok), security_header(code, "k" * 1_000_000)).encode(),
            "AuthenticationFailed",
        ),
        ("501 messages", env(submit(*[sync_message(mid=f"b{i}") for i in range(501)])), "BatchTooLarge"),
    ]
    return items


def test_hostile_corpus_gets_contract_faults_and_writes_nothing(hostile, record):
    stack, web, url, code, key, canary, listener = hostile
    failures = []
    for name, body, expected in corpus(code, key, canary, listener.url):
        response = post_raw(url, body)
        try:
            got = fault_code(response)
            assert got == f"Client.{expected}", got
            assert CANARY not in response.text and "LEAKED" not in response.text
        except AssertionError as exc:
            failures.append((name, str(exc)[:300]))
    assert not failures, failures
    assert stack.scalar("SELECT count(*) FROM queue_messages_message") == 0
    time.sleep(0.5)
    assert listener.hits == []
    logs = web.log_tail(10**8)
    assert CANARY not in logs and "LEAKED" not in logs
    assert key not in logs  # the API key is never logged
    print(f"[chaos:8-hostile] corpus={len(corpus(code, key, canary, listener.url))} listener_hits=0 rows=0")


def test_oversize_bodies_with_without_and_with_lying_content_length(hostile):
    stack, web, url, code, key, canary, listener = hostile
    limit = 10 * 1024 * 1024
    big = envelope(submit(sync_message(payload="x" * (limit + 10))), security_header(code, key)).encode()
    # with an honest Content-Length
    assert fault_code(post_raw(url, big)) == "Client.BatchTooLarge"

    # without one (chunked transfer encoding): the limit is enforced while reading
    def chunks():
        for i in range(0, len(big), 1 << 20):
            yield big[i : i + (1 << 20)]

    response = requests.post(url, data=chunks(), headers={"Content-Type": "text/xml"}, timeout=60)
    assert fault_code(response) == "Client.BatchTooLarge"

    # lying small: only the declared bytes are read, and they are not a whole document
    port = int(url.split(":")[2].split("/")[0])
    head = (
        b"POST /soap/terminal/v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
        b"Content-Length: 200\r\nConnection: close\r\n\r\n"
    )
    assert b"Client.InvalidRequest" in raw_exchange(port, head + big[:300000])
    # lying large: declares more than the limit but sends little; answered, not hung
    head = head.replace(b"Content-Length: 200", f"Content-Length: {limit * 3}".encode())
    started = time.monotonic()
    reply = raw_exchange(port, head + b"<x/>", half_close=True)
    assert b"Client.BatchTooLarge" in reply, reply[:300]
    assert time.monotonic() - started < 20
    assert stack.scalar("SELECT count(*) FROM queue_messages_message") == 0


def raw_exchange(port: int, data: bytes, half_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
        return out


def test_two_megabyte_malformed_body_costs_under_4kb_of_log(hostile):
    stack, web, url, code, key, canary, listener = hostile
    before = web.log_path.stat().st_size
    body = envelope(submit(sync_message(payload="<" * 2_000_000)), security_header(code, key)).encode()
    assert fault_code(post_raw(url, body)) == "Client.InvalidRequest"
    time.sleep(0.5)
    grown = web.log_path.read_bytes()[before:]
    assert len(grown) < 4096, len(grown)
    assert key.encode() not in grown


def test_unicode_and_huge_fields_are_stored_exactly_or_rejected(hostile):
    stack, web, url, code, key, canary, listener = hostile
    weird = "ид-✓-😀-\u202e-\u200b-שלום"
    body = envelope(
        submit(
            sync_message(mid=weird, key=weird, payload=escape('{"name": "' + weird + '"}')),
            sync_message(mid="M" * 100_000),
            sync_message(mid="big-type", mtype="t" * 100_000),
            sync_message(mid="big-key", key="K" * 100_000),
            sync_message(mid="big-payload", payload="p" * 3_000_000),
        ),
        security_header(code, key),
    ).encode()
    response = post_raw(url, body)
    assert response.status_code == 200, response.text[:300]
    root = etree.fromstring(response.content)
    results = [
        (r.findtext(f"{{{NS}}}MessageId"), r.findtext(f"{{{NS}}}Status")) for r in root.iter(f"{{{NS}}}SubmitResult")
    ]
    assert [s for _, s in results] == ["Accepted", "Rejected", "Rejected", "Rejected", "Accepted"], results
    stored = dict(stack.query("SELECT message_id, payload FROM queue_messages_message"))
    assert set(stored) == {weird, "big-payload"}
    assert stored[weird] == '{"name": "' + weird + '"}'
    assert stored["big-payload"] == "p" * 3_000_000  # stored whole, never silently cut


# --- property-based fuzzing of the envelope fields ---------------------------------------------------

XML_CHARS = st.characters(blacklist_categories=("Cs",))  # anything UTF-8 can carry
FIELD = st.one_of(
    st.text(XML_CHARS, max_size=80), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=70)
)


def xml_text(value: str) -> str:
    return escape(value).replace("\r", "&#13;")


def is_xml_char(c: str) -> bool:
    o = ord(c)
    return o in (9, 10, 13) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF


@pytest.fixture
def fuzz_target(hostile):
    stack, web, url, code, key, canary, listener = hostile
    return stack, url, code, key


def test_fuzzed_envelope_fields_get_an_answer_or_a_contract_fault(fuzz_target):
    stack, url, code, key = fuzz_target
    session = requests.Session()
    seen = {"Accepted": 0, "Rejected": 0, "fault": 0}

    @settings(
        max_examples=1500 if LONG else 120,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(
        mid=FIELD,
        mtype=st.one_of(FIELD, st.sampled_from(["product.upsert", "sale.delete", "x.y"])),
        key_=FIELD,
        # Mostly longs (a random integer of up to 70 bits is rarely one), some beyond, some text.
        seq=st.one_of(st.integers(-(2**63), 2**63 - 1).map(str), st.integers(-(2**70), 2**70).map(str), FIELD),
        created=st.one_of(st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()), FIELD),
        payload=FIELD,
    )
    # The oracle must see both answers in every run, not by chance: a valid envelope and a bad date.
    @example(mid="ok", mtype="product.upsert", key_="K", seq="1", created="2025-01-01T00:00:00+00:00", payload="{}")
    @example(mid="bad", mtype="product.upsert", key_="K", seq="1", created="yesterday", payload="{}")
    def check(mid, mtype, key_, seq, created, payload):
        mid = f"{uuid.uuid4().hex[:6]}{mid}"  # unique per example, so Duplicate never muddles the oracle
        body = envelope(
            submit(
                sync_message(
                    xml_text(mid), xml_text(mtype), xml_text(key_), xml_text(seq), xml_text(created), xml_text(payload)
                )
            ),
            security_header(code, key),
        ).encode("utf-8")
        response = session.post(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=60)
        assert response.headers["Content-Type"].startswith("text/xml"), response.text[:200]
        root = etree.fromstring(response.content)
        fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
        fields = (mid, mtype, key_, seq, created, payload)
        if fault is not None:
            code_ = fault.findtext("faultcode").rpartition(":")[2]
            # only a client's mistake, never an internal error
            assert code_ == "Client.InvalidRequest", (code_, fault.findtext("faultstring"), fields)
            seen["fault"] += 1
            if "\x00" not in mid:  # (PostgreSQL text cannot even hold a NUL to look for)
                assert not stack.scalar("SELECT count(*) FROM queue_messages_message WHERE message_id = %s", (mid,))
            return
        assert all(is_xml_char(c) for c in "".join(fields)), ("accepted XML-illegal characters", fields)
        [result] = list(root.iter(f"{{{NS}}}SubmitResult"))
        status = result.findtext(f"{{{NS}}}Status")
        rows = stack.query(
            "SELECT message_type, entity_key, sequence, payload FROM queue_messages_message WHERE message_id = %s",
            (mid,),
        )
        seen[status] += 1
        if status == "Accepted":
            # stored exactly as sent: nothing emptied, trimmed or cut
            assert rows == [(mtype, key_, int(seq), payload)], (rows, fields)
        else:
            assert status == "Rejected" and result.findtext(f"{{{NS}}}Reason"), fields
            assert rows == []

    check()
    session.close()
    print(f"[chaos:8-fuzz] {seen}")
    assert seen["Accepted"] and seen["fault"]
