"""Fault strings say what was wrong with the request, in its terms: never Python's or spyne's words.

Hostile and odd SOAP bodies (random text, envelopes with random operations, fields, values,
xsi attributes, namespaces and headers) are thrown at the endpoint: every answer is a 200 or a
SOAP fault with one of the contract's codes, and no fault string carries a Python message, a
repr or a class name. Fixed cases pin the wording integrators see for the common mistakes.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from terminals.services import terminal_create
from terminals.soap import WSSE_NS
from terminals.soap.contract import CONTRACT_FAULTS
from tests.terminals.helpers import SOAP_ENV, envelope, security_header

pytestmark = pytest.mark.django_db

URL = "/soap/terminal/v1/"
NS = "urn:syncadmin:terminal:v1"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
PYTHON_WORDS = (
    "NoneType",
    "object has no attribute",
    "Traceback",
    "pytz",
    "FixedOffset",
    "datetime.datetime(",
    "datetime.date(",
    "tzinfo",
    "<class",
    "Error(",
    "Error:",
    "Exception",
    "could not be validated",
    "Could not cast",
    "does not respect frequency",
    "<string>",
    "out of range for month",
    "must be in 1..",
    "invalid literal",
    "object is not",
    "unexpected keyword",
)


def fault_of(response) -> tuple[str, str] | None:
    assert response.status_code in (200, 500), response.status_code
    assert response["Content-Type"].startswith("text/xml"), response["Content-Type"]
    if response.status_code == 200:
        return None
    fault = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, response.content[:300]
    return fault.findtext("faultcode").rpartition(":")[2], fault.findtext("faultstring") or ""


def assert_clean(response) -> tuple[str, str] | None:
    fault = fault_of(response)
    if fault is not None:
        code, text = fault
        assert code in CONTRACT_FAULTS, (code, text)  # a bare "Server" fault would be a bug of ours
        assert not any(word in text for word in PYTHON_WORDS), text
    return fault


@pytest.fixture
def key(db):
    return terminal_create(code="FZ")[1]


def post(client, body: str | bytes, content_type: str = "text/xml; charset=utf-8"):
    data = body.encode("utf-8") if isinstance(body, str) else body
    # generic(): post() would re-encode the bytes to the Content-Type's charset.
    return client.generic("POST", URL, data, content_type=content_type)


# --- the fuzz ----------------------------------------------------------------------------------------

OPERATIONS = [
    "SubmitMessages",
    "GetMessageStatus",
    "FetchUpdates",
    "AckUpdates",
    "Heartbeat",
    "ReportCounts",
    "Bogus",
    "Envelope",
    "Fault",
]
NAMES = [
    "messages",
    "SyncMessage",
    "MessageId",
    "MessageType",
    "EntityKey",
    "Sequence",
    "CreatedAt",
    "Payload",
    "messageIds",
    "updateIds",
    "string",
    "maxCount",
    "info",
    "AppVersion",
    "LocalBacklog",
    "TerminalTime",
    "counts",
    "EntityCount",
    "EntityType",
    "Count",
    "AsOf",
    "faultcode",
    "x",
]
NAMESPACES = [NS, NS, NS, "", "urn:other", SOAP_ENV, XSI]
VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "7",
            " 7 ",
            "-1",
            "1.5",
            "1_000",
            "٣",
            "99999999999999999999999",
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00-05:30",
            "2025-01-01T00:00:00Zjunk",
            "2025-13-45T99:99:99+99:99",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T00:00:00Z",
            "true",
            "&amp;&lt;",
            "<![CDATA[<x/>]]>",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="<&"), max_size=30),
)
ATTRIBUTES = st.sampled_from(
    [
        "",
        f' xmlns:xsi="{XSI}" xsi:nil="true"',
        f' xmlns:xsi="{XSI}" xsi:nil="false"',
        f' xmlns:xsi="{XSI}" xsi:type="t:SyncMessage"',
        f' xmlns:xsi="{XSI}" xsi:type="t:Nope"',
        f' xmlns:xsi="{XSI}" xsi:type="nope:x"',
        f' xmlns:xsi="{XSI}" xsi:type="xs:string" xmlns:xs="http://www.w3.org/2001/XMLSchema"',
        ' href="#id1"',
        ' id="id1"',
        ' Type="x"',
    ]
)


@st.composite
def elements(draw, depth=0):
    name = draw(st.sampled_from(NAMES))
    ns = draw(st.sampled_from(NAMESPACES))
    attrs = draw(ATTRIBUTES)
    tag, decl = (f"q:{name}", f' xmlns:q="{ns}"') if ns else (name, ' xmlns=""')
    if depth < 3 and draw(st.booleans()):
        children = "".join(draw(st.lists(elements(depth=depth + 1), max_size=4)))
    else:
        children = draw(VALUES)
    return f"<{tag}{decl}{attrs}>{children}</{tag}>"


@st.composite
def bodies(draw):
    operation = draw(st.sampled_from(OPERATIONS))
    ns = draw(st.sampled_from([NS, NS, NS, "urn:other", SOAP_ENV]))
    inner = "".join(draw(st.lists(elements(), max_size=4)))
    return f'<op:{operation} xmlns:op="{ns}"{draw(ATTRIBUTES)}>{inner}</op:{operation}>'


@st.composite
def headers(draw, key):
    kind = draw(st.sampled_from(["good", "good", "none", "odd-token", "odd-timestamp", "random"]))
    if kind == "good":
        return security_header("FZ", key)
    if kind == "none":
        return ""
    if kind == "odd-token":
        inner = "".join(draw(st.lists(elements(), max_size=3)))
        return f'<wsse:Security xmlns:wsse="{WSSE_NS}"><wsse:UsernameToken>{inner}</wsse:UsernameToken></wsse:Security>'
    if kind == "odd-timestamp":
        wsu = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
        created, expires, nonce = draw(VALUES), draw(VALUES), draw(VALUES)
        return (
            security_header("FZ", key)
            .replace(
                "</wsse:Username>",
                f'</wsse:Username><wsse:Nonce>{nonce}</wsse:Nonce><u:Created xmlns:u="{wsu}">{created}</u:Created>',
            )
            .replace(
                "<wsse:UsernameToken>",
                f'<u:Timestamp xmlns:u="{wsu}"><u:Created>{created}</u:Created>'
                f"<u:Expires>{expires}</u:Expires></u:Timestamp><wsse:UsernameToken>",
            )
        )
    return "".join(draw(st.lists(elements(), max_size=2)))


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@FUZZ
@given(data=st.data())
def test_odd_envelopes_get_contract_faults_in_the_requests_terms(client, key, data):
    body = data.draw(bodies())
    header = data.draw(headers(key))
    assert_clean(post(client, envelope(body, header)))


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        st.sampled_from(
            [
                "",
                "<",
                "<a/>",
                f'<s:Envelope xmlns:s="{SOAP_ENV}"/>',
                f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body/></s:Envelope>',
                f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>text</s:Body></s:Envelope>',
                f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header/></s:Envelope>',
                f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault/></s:Body></s:Envelope>',
                '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>',
                '<?xml version="1.0" encoding="latin-1"?><a>\xe9</a>',
                '<?xml version="1.0" encoding="bogus"?><a/>',
            ]
        ),
    ),
    content_type=st.sampled_from(["text/xml; charset=utf-8", "application/soap+xml", "text/xml; charset=bogus"]),
)
def test_odd_documents_get_contract_faults_in_the_requests_terms(client, key, raw, content_type):
    assert_clean(post(client, raw, content_type))


# --- the wording integrators see -----------------------------------------------------------------------


def item(**fields):
    inner = "".join(f"<t:{k}>{v}</t:{k}>" for k, v in fields.items())
    return f"<t:SyncMessage>{inner}</t:SyncMessage>"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not xml", "malformed XML: Start tag expected, '<' not found, line 1, column 1"),
        (
            "<a/>",
            "not a SOAP 1.1 envelope: the root element must be {http://schemas.xmlsoap.org/soap/envelope/}Envelope",
        ),
        (f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header/></s:Envelope>', "the SOAP envelope has no Body"),
        (
            f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body/></s:Envelope>',
            "the SOAP Body is empty: it must hold the operation's element",
        ),
        (
            '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>',
            "SOAP 1.2 is not served here: send a SOAP 1.1 envelope",
        ),
        (
            envelope(
                "<t:SubmitMessages><t:messages>"
                + item(MessageId="a")
                + item(MessageId="b", CreatedAt="2026-01-01T10:00:00Zjunk")
                + "</t:messages></t:SubmitMessages>"
            ),
            'messages/SyncMessage[2]/CreatedAt: "2026-01-01T10:00:00Zjunk" is not an xs:dateTime '
            "(YYYY-MM-DDThh:mm:ss, an optional fraction, then Z, ±hh:mm or nothing)",
        ),
        (
            envelope(
                "<t:ReportCounts><t:counts><t:EntityCount><t:AsOf>0001-01-01T00:00:00+01:00</t:AsOf>"
                "</t:EntityCount></t:counts></t:ReportCounts>"
            ),
            'counts/EntityCount/AsOf: "0001-01-01T00:00:00+01:00" is outside the supported range: '
            "the instant must fall in the years 0001 to 9999 (UTC)",
        ),
        (
            envelope("<t:Heartbeat><t:info><t:LocalBacklog>1_000</t:LocalBacklog></t:info></t:Heartbeat>"),
            'info/LocalBacklog: "1_000" is not an xs:int (an optional sign and the digits 0-9 only)',
        ),
        (
            envelope("<t:FetchUpdates><t:maxCount>1</t:maxCount><t:maxCount>2</t:maxCount></t:FetchUpdates>"),
            "maxCount appears more than once",
        ),
        (
            envelope(
                f'<t:SubmitMessages><t:messages><t:SyncMessage xmlns:x="{XSI}" x:type="t:Nope"/>'
                "</t:messages></t:SubmitMessages>"
            ),
            'messages/SyncMessage: xsi:type "t:Nope" is not this element\'s type (SyncMessage)',
        ),
    ],
    ids=[
        "not-xml",
        "not-soap",
        "no-body",
        "empty-body",
        "soap-1.2",
        "bad-date",
        "instant-out-of-range",
        "bad-int",
        "repeated",
        "xsi-type",
    ],
)
def test_fault_strings_say_what_was_wrong_in_the_requests_terms(client, key, body, expected):
    # (These are refused while reading the request, before authentication: no header needed.)
    assert assert_clean(post(client, body)) == ("Client.InvalidRequest", expected)


@pytest.mark.parametrize(
    "content_type", ["", "application/json", "text/plain; charset=utf-8", "application/xml", "text/xmlx"]
)
def test_a_request_that_does_not_say_it_is_soap_is_refused_before_parsing(client, key, content_type):
    body = envelope("<t:FetchUpdates><t:maxCount>1</t:maxCount></t:FetchUpdates>", security_header("FZ", key))
    code, text = assert_clean(post(client, body, content_type))
    assert code == "Client.InvalidRequest"
    assert "send the SOAP 1.1 envelope as text/xml" in text
