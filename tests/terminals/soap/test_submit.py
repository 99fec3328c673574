"""SubmitMessages read and answered by terminals/soap/submit.py gives exactly spyne's answers.

Every request below is sent twice, once with the fast reader/writer (GuardedSoap11.fast_submit)
and once with spyne's own (de)serialisers, each time for a fresh terminal: the HTTP status,
the response bytes and the stored messages must be the same. The plain requests must be read
by the fast reader (else the comparison proves nothing); the odd ones must be left to spyne,
which answers them (a fault naming the field, or spyne's structural leniency). Both paths read
numbers and dates with the same strict readers (terminals/soap/xsd.py), so "the same" is the
contract's answer, which the tests at the end of this file check value by value.
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


# Valid xs:dateTime forms and the instant each names (the contract, "Dates and times").
DATES = {
    "2025-01-01T00:00:00.5Z": "2025-01-01T00:00:00.500000+00:00",
    "2025-06-30T23:59:59.123456+05:30": "2025-06-30T18:29:59.123456+00:00",
    "2025-01-01T00:00:00-05:00": "2025-01-01T05:00:00+00:00",
    "2025-01-01T00:00:00-05:30": "2025-01-01T05:30:00+00:00",
    "2025-01-01T00:00:00-03:30": "2025-01-01T03:30:00+00:00",  # Newfoundland
    "2025-01-01T00:00:00-09:30": "2025-01-01T09:30:00+00:00",  # Marquesas
    "2025-01-01T00:00:00-00:30": "2025-01-01T00:30:00+00:00",
    "2025-01-01T00:00:00+00:30": "2024-12-31T23:30:00+00:00",
    "2025-01-01T00:00:00+00:00": "2025-01-01T00:00:00+00:00",
    "2025-01-01T00:00:00-00:00": "2025-01-01T00:00:00+00:00",
    "2025-03-01T10:00:00": "2025-03-01T10:00:00+00:00",
    "2025-03-01T10:00:00.000001": "2025-03-01T10:00:00.000001+00:00",
    "2025-01-01T00:00:00+14:00": "2024-12-31T10:00:00+00:00",
    "2025-01-01T00:00:00-14:00": "2025-01-01T14:00:00+00:00",
    "2025-01-01T00:00:00.9999999Z": "2025-01-01T00:00:00.999999+00:00",  # WCF's 7 digits: truncated
    "2025-01-01T00:00:00.1234567-05:30": "2025-01-01T05:30:00.123456+00:00",
    "2025-01-01T24:00:00Z": "2025-01-02T00:00:00+00:00",  # XML Schema: the next day's midnight
    "2024-02-29T12:00:00Z": "2024-02-29T12:00:00+00:00",
    " 2025-01-01T00:00:00Z\n": "2025-01-01T00:00:00+00:00",  # the whitespace facet
    "0001-01-01T00:00:00Z": "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00-05:00": "0001-01-01T05:00:00+00:00",
    "9999-12-31T23:59:59.999999Z": "9999-12-31T23:59:59.999999+00:00",
    "9999-12-31T10:00:00+05:00": "9999-12-31T05:00:00+00:00",
}

# Not an xs:dateTime the hub can store: the whole call is refused (Client.InvalidRequest).
BAD_DATES = [
    "2025-01-01T00:00:00Zjunk",
    "2025-01-01T00:00:00+05:75",
    "2025-01-01T00:00:00+05:60",
    "2025-01-01T00:00:00+14:01",
    "2025-01-01T00:00:00-14:30",
    "2025-01-01T00:00:00+24:00",
    "2025-01-01T00:00:00+0530",
    "2025-13-01T00:00:00Z",
    "2025-02-29T00:00:00Z",
    "2025-02-30T00:00:00Z",
    "2025-01-01T25:00:00Z",
    "2025-01-01T24:00:01Z",
    "2025-01-01T23:60:00Z",
    "2025-01-01T23:59:60Z",
    "2025-01-01 00:00:00Z",
    "2025-01-01T00:00Z",
    "2025-01-01T00:00:00.Z",
    "2025-01-01",
    "yesterday",
    "0000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+05:00",  # an instant before the year 1
    "9999-12-31T23:59:59-05:00",  # an instant after the year 9999
    "9999-12-31T24:00:00Z",
    "٢٠٢٥-01-01T00:00:00Z",
    "2025-01-01T00:00:00\u00a0",
]

# Not an xs:long: refused the same way. (Python's int() takes the underscore, the Arabic-Indic
# digit and the no-break space.)
BAD_LONGS = ["7.0", "1.5", "abc", "1_000", "٣", "1e3", "0x10", "+", "- 7", "7 7", "\u00a07", "9223372036854775808"]

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
    (
        "sequences",
        submit(
            *(
                item(f"s{i}", seq=s)
                for i, s in enumerate(
                    [
                        "0",
                        "-5",
                        "+7",
                        "007",
                        "9" * 18,
                        " 7 ",
                        "\n\t8\r\n",
                        "9223372036854775807",
                        "-9223372036854775808",
                    ]
                )
            )
        ),
        True,
    ),
    ("sequence-leading-zeros", submit(item(seq="000000000000000000000000042")), True),
    ("sequence-empty", submit(item(seq="")), True),
    ("sequence-blank", submit(item(seq="   ")), True),
    ("created-empty", submit(item(created="")), True),
    (
        "dates",
        submit(*(item(f"d{i}", created=c) for i, c in enumerate(DATES))),
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
    # values the strict readers refuse: spyne reads the request and answers with the fault
    *((f"sequence-{i}", submit(item(seq=v)), False) for i, v in enumerate(BAD_LONGS)),
    *((f"created-{i}", submit(item(created=v)), False) for i, v in enumerate(BAD_DATES)),
    ("bad-value-in-a-later-item", submit(item("a"), item("b", created="2025-01-01T00:00:00Zjunk")), False),
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


@pytest.fixture(params=[True, False], ids=["fast", "spyne"])
def either_path(request, monkeypatch):
    monkeypatch.setattr(GuardedSoap11, "fast_submit", request.param)
    return request.param


def test_every_valid_date_form_is_stored_as_the_instant_it_names(client, either_path):
    body = submit(*(item(f"d{i}", created=text) for i, text in enumerate(DATES)))
    assert (read_sync_messages(_body_element(body)) is not None) is True
    status, results = _answer(client, body)
    assert (status, {r for r in results}) == (200, {("Accepted", None)})
    stored = dict(Message.objects.values_list("message_id", "created_at"))
    assert {text: stored[f"d{i}"].isoformat() for i, text in enumerate(DATES)} == DATES


def test_a_negative_half_hour_offset_is_read_exactly(client, either_path):
    # spyne added the minutes to the negative hours (-05:30 was stored as -04:30, -00:30 as
    # +00:30); both paths now read the offset as the contract says.
    body = submit(item("z", created="2025-01-01T00:00:00-05:30"), item("y", created="2025-01-01T00:00:00-00:30"))
    assert read_sync_messages(_body_element(body)) is not None  # the fast reader reads them itself
    _answer(client, body)
    assert Message.objects.get(message_id="z").created_at.isoformat() == "2025-01-01T05:30:00+00:00"
    assert Message.objects.get(message_id="y").created_at.isoformat() == "2025-01-01T00:30:00+00:00"


def test_whitespace_around_a_long_is_collapsed(client, either_path):
    _answer(client, submit(item("w", seq=" 7 "), item("v", seq="\n  +0042\t")))
    assert dict(Message.objects.values_list("message_id", "sequence")) == {"w": 7, "v": 42}


PYTHON_WORDS = ("NoneType", "object has no attribute", "Traceback", "pytz", "datetime.datetime(", "tzinfo", "<class")


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [("seq", v, "xs:long") for v in BAD_LONGS] + [("created", v, "xs:dateTime") for v in BAD_DATES],
)
def test_bad_numbers_and_dates_are_invalid_request_faults_with_nothing_stored(client, either_path, field, value, kind):
    status, code, text = _answer(client, submit(item("good"), item("bad", **{field: value})))
    assert (status, code) == (500, "Client.InvalidRequest")
    name = {"seq": "Sequence", "created": "CreatedAt"}[field]
    # The fault names the field and the item, quotes the value and says what is wrong with it.
    assert text.startswith(f'messages/SyncMessage[2]/{name}: "'), text
    assert kind in text or "out of range" in text or "supported range" in text, text
    assert not any(word in text for word in PYTHON_WORDS), text
    assert not Message.objects.exists()


def test_a_repeated_field_is_an_invalid_request_fault(client):
    status, code, text = _answer(client, submit(item(extra="<t:Sequence>2</t:Sequence>")))
    assert (status, code, text) == (
        500,
        "Client.InvalidRequest",
        "messages/SyncMessage: Sequence appears more than once",
    )
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
