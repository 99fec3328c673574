"""SubmitMessages read and answered by terminals/soap/submit.py gives exactly spyne's answers.

Every request below is sent twice, once with the fast reader/writer (GuardedSoap11.fast_submit)
and once with spyne's own (de)serialisers, each time for a fresh terminal: the HTTP status,
the response bytes and the stored messages must be the same. The plain requests must be read
by the fast reader (else the comparison proves nothing); the odd ones must be left to spyne,
which is how they keep the answer or the fault they always had.
"""

import pytest
from lxml import etree

from messages.models import Message
from terminals.services import terminal_create
from terminals.soap import GuardedSoap11
from terminals.soap.submit import read_sync_messages
from tests.terminals.helpers import SOAP_ENV, envelope, security_header

pytestmark = pytest.mark.django_db

URL = "/soap/terminal/v1/"
NS = "urn:syncadmin:terminal:v1"
FIELDS = ("MessageId", "MessageType", "EntityKey", "Sequence", "CreatedAt", "Payload")
STORED = ("message_id", "message_type", "entity_type", "entity_key", "sequence", "created_at", "payload", "state")


def item(mid="m1", mtype="product.upsert", key="SKU-1", seq="1", created="2025-01-01T00:00:00Z", payload="{}", **kw):
    """A SyncMessage; a field given as None is left out, ``extra`` is appended inside it."""
    values = dict(zip(FIELDS, (mid, mtype, key, seq, created, payload), strict=True))
    inner = "".join(f"<t:{name}>{value}</t:{name}>" for name, value in values.items() if value is not None)
    return f"<t:SyncMessage{kw.get('attrs', '')}>{inner}{kw.get('extra', '')}</t:SyncMessage>"


def submit(*items: str) -> str:
    return f"<t:SubmitMessages><t:messages>{''.join(items)}</t:messages></t:SubmitMessages>"


XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'


def other_ns(xml: str, name: str) -> str:
    """``xml`` with the (first) element ``name`` in another namespace."""
    xml = xml.replace(f"t:{name}", f"o:{name}")
    return xml.replace(f"<o:{name}", f'<o:{name} xmlns:o="urn:other"', 1)


# (id, body, read by the fast reader)
PLAIN = [
    ("one", submit(item()), True),
    (
        "mixed-batch",
        submit(item("a"), item("b", key="SKU-2"), item(None), item("a"), item("c", key="k" * 129), item("d")),
        True,
    ),
    ("empty-message-id", submit(item("")), True),
    ("missing-type", submit(item(mtype=None)), True),
    ("missing-key", submit(item(key=None)), True),
    ("missing-sequence", submit(item(seq=None)), True),
    ("missing-created", submit(item(created=None)), True),
    ("missing-payload", submit(item(payload=None)), True),
    ("empty-payload", submit(item(payload="")), True),
    ("all-fields-missing", submit("<t:SyncMessage/>"), True),
    ("too-long-id", submit(item("x" * 65), item("y" * 64)), True),
    ("too-long-type", submit(item(mtype="p" * 60 + ".upsert")), True),
    ("too-long-key", submit(item(key="k" * 129)), True),
    ("sequences", submit(*(item(f"s{i}", seq=s) for i, s in enumerate(["0", "-5", "+7", "007", "9" * 18]))), True),
    (
        "dates",
        submit(
            *(
                item(f"d{i}", created=c)
                for i, c in enumerate(
                    [
                        "2025-01-01T00:00:00.5Z",
                        "2025-06-30T23:59:59.123456+05:30",
                        "2025-01-01T00:00:00-05:00",
                        "2025-01-01T00:00:00+00:00",
                        "2025-01-01T00:00:00-00:00",
                        "2025-03-01T10:00:00",
                        "2025-03-01T10:00:00.000001",
                        "2025-01-01T00:00:00+14:00",
                        "2025-01-01T00:00:00+05:75",
                        "0002-01-01T00:00:00Z",
                        "9998-12-31T23:59:59Z",
                    ]
                )
            )
        ),
        True,
    ),
    (
        "escaped-text",
        submit(
            item("e&amp;&lt;&gt;&quot;'1", payload="a&lt;b&gt;&amp;c"),
            item("<![CDATA[e<2>]]>", payload="<![CDATA[<x>]]]]><![CDATA[>]]>"),
            item("e&#13;3&#10;\t", key="K&#13;"),
            item("é€😀", payload='{"name": "Thé 😀"}'),
            item("e]]&gt;5"),
        ),
        True,
    ),
    ("comment-and-pi-in-text", submit(item("c1", payload="a<!-- x -->b<?pi y?>c")), True),
    ("empty-messages", submit(), True),
    ("no-messages-element", "<t:SubmitMessages/>", True),
    (
        "pretty-printed",
        "<t:SubmitMessages>\n  <t:messages>\n    <t:SyncMessage>\n      <t:MessageId>p1</t:MessageId>\n"
        "      <t:MessageType>product.upsert</t:MessageType>\n    <t:EntityKey>K</t:EntityKey>\n"
        "      <t:Sequence>3</t:Sequence>\n      <t:CreatedAt>2025-01-01T00:00:00Z</t:CreatedAt>\n"
        "      <t:Payload>{}</t:Payload>\n    </t:SyncMessage>\n  </t:messages>\n</t:SubmitMessages>",
        True,
    ),
    (
        "default-namespace",
        f'<SubmitMessages xmlns="{NS}"><messages><SyncMessage><MessageId>n1</MessageId>'
        "<MessageType>product.upsert</MessageType><EntityKey>K</EntityKey><Sequence>1</Sequence>"
        "<CreatedAt>2025-01-01T00:00:00Z</CreatedAt><Payload>{}</Payload></SyncMessage></messages></SubmitMessages>",
        True,
    ),
    (
        "fields-in-any-order",
        submit(
            "<t:SyncMessage><t:Payload>{}</t:Payload><t:CreatedAt>2025-01-01T00:00:00Z</t:CreatedAt>"
            "<t:Sequence>1</t:Sequence><t:EntityKey>K</t:EntityKey><t:MessageType>product.upsert</t:MessageType>"
            "<t:MessageId>m1</t:MessageId></t:SyncMessage>"
        ),
        True,
    ),
]

ODD = [
    # numbers spyne reads its own way (or refuses)
    ("sequence-not-a-number", submit(item(seq="not-a-number")), False),
    ("sequence-fraction", submit(item(seq="1.5")), False),
    ("sequence-spaces", submit(item(seq=" 7 ")), False),
    ("sequence-underscore", submit(item(seq="1_000")), False),
    ("sequence-max", submit(item(seq="9223372036854775807")), False),
    ("sequence-overflow", submit(item(seq="9223372036854775808")), False),
    ("sequence-empty", submit(item(seq="")), False),
    # dates spyne reads its own way (or refuses)
    ("created-word", submit(item(created="yesterday")), False),
    ("created-month-13", submit(item(created="2025-13-01T00:00:00Z")), False),
    ("created-hour-24", submit(item(created="2025-01-01T24:00:00Z")), False),
    ("created-space", submit(item(created="2025-01-01 00:00:00Z")), False),
    ("created-trailing-junk", submit(item(created="2025-01-01T00:00:00Zjunk")), False),
    ("created-7-digit-fraction", submit(item(created="2025-01-01T00:00:00.9999999Z")), False),
    ("created-negative-half-hour", submit(item(created="2025-01-01T00:00:00-05:30")), False),
    ("created-offset-too-big", submit(item(created="2025-01-01T00:00:00+24:00")), False),
    ("created-year-1", submit(item(created="0001-01-01T00:00:00+05:00")), False),
    ("created-year-9999", submit(item(created="9999-12-31T23:59:59-05:00")), False),
    ("created-date-only", submit(item(created="2025-01-01")), False),
    ("created-empty", submit(item(created="")), False),
    # structure
    ("unknown-field", submit(item(extra="<t:Bogus>1</t:Bogus>")), False),
    ("repeated-field", submit(item(extra="<t:Payload>2</t:Payload>")), False),
    ("field-without-namespace", submit(item().replace("t:MessageId", "MessageId")), False),
    ("field-in-another-namespace", submit(other_ns(item(), "EntityKey")), False),
    ("item-with-another-name", submit(item().replace("SyncMessage", "Message")), False),
    ("item-in-another-namespace", submit(other_ns(item(), "SyncMessage")), False),
    ("messages-in-another-namespace", other_ns(submit(item()), "messages"), False),
    (
        "messages-twice",
        submit(item("a")).replace("</t:messages>", f"</t:messages><t:messages>{item()}</t:messages>"),
        False,
    ),
    ("unknown-sibling-of-messages", submit(item()).replace("</t:SubmitMessages>", "<t:x/></t:SubmitMessages>"), False),
    ("nil-field", submit(item(mid=None, extra=f'<t:MessageId {XSI} xsi:nil="true"/>')), False),
    ("nil-item", submit(f'<t:SyncMessage {XSI} xsi:nil="true"/>', item("ok")), False),
    ("nil-messages", f'<t:SubmitMessages><t:messages {XSI} xsi:nil="true"/></t:SubmitMessages>', False),
    ("attribute-on-field", submit(item(extra="").replace("<t:Payload>", '<t:Payload lang="en">')), False),
    ("attribute-on-item", submit(item(attrs=' id="x"')), False),
    ("xsi-type-on-item", submit(item(attrs=f' {XSI} xsi:type="t:SyncMessage"')), False),
    ("text-in-item", submit(item(extra="stray text")), True),  # text between fields: ignored by both
]

# Refused before the reader runs: the guard's check for markup in text fields.
GUARDED = [
    ("markup-in-payload", submit(item(payload="a<b>x</b>c"))),
    ("markup-in-message-id", submit(item(mid="<b>m</b>"))),
    ("markup-in-sequence", submit(item(seq="1<x/>"))),
    ("markup-in-created", submit(item(created="2025<x/>"))),
]


def _post(client, code, key, body: str):
    data = envelope(body, security_header(code, key)).encode("utf-8")
    return client.post(URL, data=data, content_type="text/xml; charset=utf-8")


def _stored(terminal):
    return list(Message.objects.filter(terminal=terminal).order_by("pk").values_list(*STORED))


def _body_element(body: str):
    root = etree.fromstring(envelope(body).encode("utf-8"), etree.XMLParser(**GuardedSoap11().parser_kwargs))
    return root.find(f"{{{SOAP_ENV}}}Body")[0]


def _both(client, monkeypatch, body: str):
    """(status, content, stored rows) with the fast path, then with spyne's."""
    answers = []
    for code, fast in (("FAST", True), ("SPYNE", False)):
        terminal, key = terminal_create(code=code)
        monkeypatch.setattr(GuardedSoap11, "fast_submit", fast)
        response = _post(client, code, key, body)
        answers.append((response.status_code, response.content, _stored(terminal)))
    return answers


@pytest.mark.parametrize(("body", "fast"), [pytest.param(b, f, id=i) for i, b, f in PLAIN + ODD])
def test_the_fast_path_answers_and_stores_exactly_what_spyne_does(client, monkeypatch, body, fast):
    assert (read_sync_messages(_body_element(body)) is not None) is fast
    fast_answer, spyne_answer = _both(client, monkeypatch, body)
    assert fast_answer[0] == spyne_answer[0]
    assert fast_answer[1] == spyne_answer[1]
    assert fast_answer[2] == spyne_answer[2]


@pytest.mark.parametrize("body", [pytest.param(b, id=i) for i, b in GUARDED])
def test_markup_in_a_text_field_is_refused_before_reading(client, monkeypatch, body):
    fast_answer, spyne_answer = _both(client, monkeypatch, body)
    assert fast_answer[:2] == spyne_answer[:2]
    assert fast_answer[0] == 500 and b"Client.InvalidRequest" in fast_answer[1] and b"must be text" in fast_answer[1]
    assert fast_answer[2] == spyne_answer[2] == []


# --- what the answers are (the comparison above shows both paths give them) -------------------------


def _answer(client, body):
    terminal, key = terminal_create(code="T1")
    response = _post(client, "T1", key, body)
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    if fault is not None:
        return response.status_code, fault.findtext("faultcode").rpartition(":")[2], fault.findtext("faultstring")
    results = root.iter(f"{{{NS}}}SubmitResult")
    return response.status_code, [(r.findtext(f"{{{NS}}}Status"), r.findtext(f"{{{NS}}}Reason")) for r in results]


def test_missing_fields_reject_that_message_only(client):
    body = submit(item("a", seq=None), item("b", created=None), item(None), item("d", key=None), item("ok"))
    assert _answer(client, body) == (
        200,
        [
            ("Rejected", "Sequence is missing"),
            ("Rejected", "CreatedAt is missing"),
            ("Rejected", "MessageId is missing"),
            ("Rejected", "EntityKey is missing"),
            ("Accepted", None),
        ],
    )


def test_too_long_strings_reject_that_message_only(client):
    body = submit(item("x" * 65), item("k", key="k" * 129), item("ok", key="k" * 128))
    status, results = _answer(client, body)
    assert status == 200
    assert results[0] == ("Rejected", "MessageId is longer than 64 characters")
    assert results[1] == ("Rejected", "EntityKey is longer than 128 characters")
    assert results[2] == ("Accepted", None)


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("seq", "abc", "Could not cast 'abc' to integer"),
        ("seq", "1.5", "Could not cast '1.5' to integer"),
        ("seq", "9223372036854775808", "invalid request"),
        ("created", "yesterday", "invalid request"),
        ("created", "2025-02-30T00:00:00Z", "day is out of range for month"),
    ],
)
def test_bad_numbers_and_dates_are_invalid_request_faults_with_nothing_stored(client, field, value, detail):
    status, code, text = _answer(client, submit(item("good"), item("bad", **{field: value})))
    assert (status, code) == (500, "Client.InvalidRequest")
    assert detail in text
    assert not Message.objects.exists()


def test_a_repeated_field_is_an_invalid_request_fault(client):
    status, code, text = _answer(client, submit(item(extra="<t:Sequence>2</t:Sequence>")))
    assert (status, code) == (500, "Client.InvalidRequest") and "'Sequence'" in text
    assert not Message.objects.exists()


def test_an_operation_in_another_namespace_is_an_invalid_request_fault(client):
    body = submit(item()).replace("t:SubmitMessages", "o:SubmitMessages")
    body = body.replace("<o:SubmitMessages>", '<o:SubmitMessages xmlns:o="urn:syncadmin:terminal:v2">', 1)
    status, code, text = _answer(client, body)
    assert (status, code) == (500, "Client.InvalidRequest") and "unknown operation" in text


def test_unknown_elements_and_foreign_namespaces_of_fields_are_ignored_as_before(client):
    # spyne's behaviour since the API exists (not a schema check): kept as it was.
    body = submit(item("u1", extra="<t:Bogus>1</t:Bogus>"), item("u2").replace("t:MessageId", "MessageId"))
    assert _answer(client, body) == (200, [("Accepted", None), ("Accepted", None)])
    assert sorted(Message.objects.values_list("message_id", flat=True)) == ["u1", "u2"]


def test_a_negative_half_hour_offset_is_read_as_spyne_reads_it(client):
    # spyne adds the minutes to the negative hours (-05:30 is taken as -04:30); the fast
    # reader leaves such dates to spyne so nothing changes. Noted, not fixed here.
    _answer(client, submit(item("z", created="2025-01-01T00:00:00-05:30")))
    created = Message.objects.get(message_id="z").created_at
    assert created.isoformat() == "2025-01-01T04:30:00+00:00"
