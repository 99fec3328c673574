"""Hardening of the SOAP endpoint: XML attacks, limits, malformed input, log cap, database down."""

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from zeep.exceptions import Fault

from messages.models import Message
from terminals.soap import ClipRecords, has_doctype_in_prolog
from tests.terminals.helpers import FetchListener, code_of, envelope, fault_of, post_raw, security_header
from tests.terminals.helpers import stock_message as msg

pytestmark = pytest.mark.django_db(transaction=True)

FETCH = "<t:FetchUpdates><t:maxCount>{}</t:maxCount></t:FetchUpdates>"


def sync_message(mid: str, sequence: str = "1", created: str = "2025-01-01T00:00:00Z", payload: str = "{}") -> str:
    return (
        f"<t:SyncMessage><t:MessageId>{mid}</t:MessageId><t:MessageType>product.upsert</t:MessageType>"
        f"<t:EntityKey>SKU-1</t:EntityKey><t:Sequence>{sequence}</t:Sequence><t:CreatedAt>{created}</t:CreatedAt>"
        f"<t:Payload>{payload}</t:Payload></t:SyncMessage>"
    )


def submit_body(*messages: str) -> str:
    return f"<t:SubmitMessages><t:messages>{''.join(messages)}</t:messages></t:SubmitMessages>"


# --- XML attacks ---------------------------------------------------------------------------------------

LAUGHS = "".join(
    f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' if i else '<!ENTITY lol0 "lol">' for i in range(10)
)


@pytest.fixture
def canary(tmp_path) -> Path:
    path = tmp_path / "canary.txt"
    path.write_text("CANARY-7f3a-secret")
    return path


@pytest.fixture
def dtd_server():
    """A local HTTP server that counts every fetch: an external DTD must never be fetched."""
    listener = FetchListener(b'<!ENTITY leak "LEAKED-VIA-DTD">')
    yield listener.url, listener.hits
    listener.close()


def test_billion_laughs_is_refused_at_once(term_a, soap_url):
    terminal, key = term_a
    body = envelope(FETCH.format("&lol9;"), security_header(terminal.code, key), prolog=f"<!DOCTYPE lolz [{LAUGHS}]>")
    started = time.perf_counter()
    response = post_raw(soap_url, body)
    elapsed = time.perf_counter() - started
    assert fault_of(response)[0] == "Client.ForbiddenXml"
    assert elapsed < 0.5
    assert b"lollol" not in response.content


def test_billion_laughs_in_utf16_is_refused_after_parsing_without_expansion(term_a, soap_url):
    # The prolog scan reads UTF-16 too, and the parser behind it never expands entities.
    terminal, key = term_a
    body = envelope(
        FETCH.format("&lol9;"),
        security_header(terminal.code, key),
        prolog=f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE lolz [{LAUGHS}]>',
    ).encode("utf-16")
    assert has_doctype_in_prolog(body)
    started = time.perf_counter()
    response = post_raw(soap_url, body)
    assert fault_of(response)[0] == "Client.ForbiddenXml"
    assert time.perf_counter() - started < 0.5


def test_external_entity_to_a_local_file_is_refused_and_never_read(term_a, soap_url, canary):
    terminal, key = term_a
    body = envelope(
        FETCH.format("&xxe;"),
        security_header(terminal.code, key),
        prolog=f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY xxe SYSTEM "file://{canary}">]>',
    )
    response = post_raw(soap_url, body)
    assert fault_of(response)[0] == "Client.ForbiddenXml"
    assert b"CANARY" not in response.content


def test_parameter_entities_and_an_external_dtd_subset_are_refused_without_a_fetch(term_a, soap_url, dtd_server):
    terminal, key = term_a
    base, hits = dtd_server
    prologs = [
        f'<!DOCTYPE e [<!ENTITY % remote SYSTEM "{base}/param.dtd"> %remote;]>',
        f'<!DOCTYPE Envelope SYSTEM "{base}/subset.dtd">',
        f'<!DOCTYPE Envelope PUBLIC "-//X//Y" "{base}/public.dtd" [<!ENTITY x "y">]>',
        f'<?xml version="1.0"?>\n<!-- a comment first -->\n<!DOCTYPE e [<!ENTITY leak SYSTEM "{base}/e">]>',
    ]
    for prolog in prologs:
        body = envelope(FETCH.format("&leak;"), security_header(terminal.code, key), prolog=prolog)
        response = post_raw(soap_url, body)
        assert fault_of(response)[0] == "Client.ForbiddenXml", prolog
        assert b"LEAKED" not in response.content
    time.sleep(0.2)
    assert hits == []


def test_doctype_text_inside_a_payload_is_data_not_a_doctype(term_a, soap_url):
    terminal, key = term_a
    payload = "<![CDATA[<!DOCTYPE html><p>receipt</p>]]>"
    response = post_raw(
        soap_url, envelope(submit_body(sync_message("cdata-1", payload=payload)), security_header(terminal.code, key))
    )
    assert response.status_code == 200, response.text
    assert Message.objects.get(message_id="cdata-1").payload == "<!DOCTYPE html><p>receipt</p>"


# --- malformed input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "<not xml",
        "",
        "<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/soap/envelope/'><soap:Body>",
        "<root>not a soap envelope</root>",
    ],
)
def test_malformed_xml_is_an_invalid_request_fault(soap_url, body, transactional_db):
    assert fault_of(post_raw(soap_url, body))[0] == "Client.InvalidRequest"


@pytest.mark.parametrize(
    "body",
    [
        FETCH.format("abc"),
        FETCH.format("99999999999999999999"),
        submit_body(sync_message("w1", sequence="not-a-number")),
        submit_body(sync_message("w2", created="yesterday")),
        submit_body(sync_message("w3", sequence="1.5")),
        "<t:NoSuchOperation/>",
        "<t:Heartbeat><t:info><t:LocalBacklog>many</t:LocalBacklog></t:info></t:Heartbeat>",
    ],
)
def test_wrong_types_and_unknown_operations_are_invalid_request_faults(term_a, soap_url, body):
    terminal, key = term_a
    response = post_raw(soap_url, envelope(body, security_header(terminal.code, key)))
    assert fault_of(response)[0] == "Client.InvalidRequest"
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "application/xml"],
)
def test_a_body_not_sent_as_soap_is_refused_with_nothing_stored(term_a, soap_url, content_type):
    terminal, key = term_a
    headers = {"SOAPAction": '""'} | ({"Content-Type": content_type} if content_type else {})
    data = envelope(submit_body(sync_message("ct-1")), security_header(terminal.code, key)).encode("utf-8")
    response = requests.post(soap_url, data=data, headers=headers, timeout=30)
    code, text = fault_of(response)
    assert code == "Client.InvalidRequest" and "send the SOAP 1.1 envelope as text/xml" in text
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/xml",
        "TEXT/XML; charset=UTF-8",
        "text/xml;charset=utf-8",
        'application/soap+xml; charset=utf-8; action="x"',
    ],
)
def test_soap_media_types_are_accepted_with_any_case_and_parameters(term_a, soap_url, content_type):
    terminal, key = term_a
    body = envelope(submit_body(sync_message("ct-ok")), security_header(terminal.code, key))
    response = post_raw(soap_url, body, content_type=content_type)
    assert response.status_code == 200, response.text
    assert Message.objects.filter(message_id="ct-ok").exists()


def test_a_get_without_wsdl_is_a_fault_not_an_html_page(soap_url, transactional_db):
    response = requests.get(soap_url, timeout=10)
    assert fault_of(response)[0] == "Client.InvalidRequest"


# --- limits --------------------------------------------------------------------------------------------------


def test_a_batch_at_the_limit_is_accepted_and_one_over_is_refused_with_nothing_stored(term_a, zeep_client, settings):
    terminal, key = term_a
    assert settings.SYNC_MAX_BATCH == 500  # the contract's default, exercised at full size
    client = zeep_client(terminal.code, key)
    at_limit = client.service.SubmitMessages(messages={"SyncMessage": [msg(f"a{i}") for i in range(500)]})
    assert len(at_limit) == 500 and {r.Status for r in at_limit} == {"Accepted"}
    assert Message.objects.count() == 500
    with pytest.raises(Fault) as exc:
        client.service.SubmitMessages(messages={"SyncMessage": [msg(f"b{i}") for i in range(501)]})
    assert code_of(exc.value) == "Client.BatchTooLarge"
    assert Message.objects.count() == 500 and not Message.objects.filter(message_id__startswith="b").exists()


def test_the_batch_limit_follows_the_setting(term_a, zeep_client, settings):
    terminal, key = term_a
    settings.SYNC_MAX_BATCH = 3
    client = zeep_client(terminal.code, key)
    assert len(client.service.SubmitMessages(messages={"SyncMessage": [msg(f"c{i}") for i in range(3)]})) == 3
    for op, kwargs in [
        ("SubmitMessages", {"messages": {"SyncMessage": [msg(f"d{i}") for i in range(4)]}}),
        ("GetMessageStatus", {"messageIds": {"string": ["1", "2", "3", "4"]}}),
        ("AckUpdates", {"updateIds": {"string": ["1", "2", "3", "4"]}}),
    ]:
        with pytest.raises(Fault) as exc:
            getattr(client.service, op)(**kwargs)
        assert code_of(exc.value) == "Client.BatchTooLarge", op
    assert Message.objects.count() == 3


def test_a_body_over_the_size_limit_is_refused_with_nothing_stored(term_a, soap_url, settings):
    terminal, key = term_a
    settings.SYNC_MAX_BODY_BYTES = 20_000
    small = envelope(submit_body(sync_message("s1")), security_header(terminal.code, key))
    assert post_raw(soap_url, small).status_code == 200
    big = envelope(submit_body(sync_message("big", payload="x" * 30_000)), security_header(terminal.code, key))
    code, text = fault_of(post_raw(soap_url, big))
    assert code == "Client.BatchTooLarge" and "20000 bytes" in text
    assert list(Message.objects.values_list("message_id", flat=True)) == ["s1"]


# --- logging ---------------------------------------------------------------------------------------------------


def test_a_2mb_bad_body_produces_only_a_few_kb_of_log(soap_url, caplog, transactional_db):
    caplog.set_level(logging.DEBUG)
    secret = "SECRET-PASSWORD-IN-BODY"
    bad = (f"<soap:Envelope><wsse:Password>{secret}</wsse:Password>" + "A" * 2_000_000).encode()
    assert fault_of(post_raw(soap_url, bad))[0] == "Client.InvalidRequest"
    bad_type = envelope(FETCH.format("9" * 2_000_000))  # valid XML, spyne's validator complains about the value
    assert fault_of(post_raw(soap_url, bad_type))[0] == "Client.InvalidRequest"
    handler = logging.StreamHandler(stream=None)
    logged = "\n".join(handler.format(r) for r in caplog.records)
    assert caplog.records, "the failures should be logged"
    assert len(logged) < 8_000, len(logged)
    assert secret not in logged


def test_the_clip_filter_truncates_messages_and_tracebacks():
    record = logging.LogRecord(
        "spyne.server.wsgi", logging.ERROR, __file__, 1, "%r in string %r", ("e", "B" * 50_000), None
    )
    try:
        raise ValueError("C" * 50_000)
    except ValueError:
        record.exc_info = sys.exc_info()
    assert ClipRecords().filter(record)
    text = logging.Formatter().format(record)
    assert 1_000 < len(text) < 6_000
    assert "more characters not logged" in text


def test_the_protocol_refuses_a_doctype_on_its_own_too(term_a):
    # Second line of defence: the view's prolog scan refuses this already; the protocol's
    # docinfo check after a non-expanding parse must refuse it as well.
    terminal, key = term_a
    body = envelope(
        FETCH.format("1"),
        security_header(terminal.code, key),
        prolog='<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY y "z">]>',
    ).encode("utf-16-le")
    assert has_doctype_in_prolog(body)
    from terminals.soap import GuardedSoap11

    class Ctx:
        transport = None
        in_string = [body]

    with pytest.raises(Exception) as exc:
        GuardedSoap11().create_in_document(Ctx())
    assert exc.value.faultcode == "Client.ForbiddenXml"


def test_prolog_scanner():
    assert has_doctype_in_prolog(b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- c --> <!DOCTYPE x>')
    assert has_doctype_in_prolog(b"<!ENTITY x 'y'>")
    assert not has_doctype_in_prolog(b"<?xml version='1.0'?><a><![CDATA[<!DOCTYPE x>]]></a>")
    assert not has_doctype_in_prolog(b"")


# --- the database is down --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hub_without_database(tmp_path):
    """A real hub process (gunicorn) whose database is a PostgreSQL port where nothing listens."""
    dead_db = _free_port()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead_db}/nothing_here",
        "SYNC_VAR_DIR": str(tmp_path),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
    }
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "syncadmin.wsgi:application"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gunicorn.log", "wb"),
    )
    url = f"http://127.0.0.1:{port}/soap/terminal/v1/"
    try:
        for _ in range(100):
            try:
                requests.get(url + "?wsdl", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_database_down_is_server_unavailable(hub_without_database):
    url = hub_without_database
    wsdl = requests.get(url + "?wsdl", timeout=10)
    assert wsdl.status_code == 200  # the WSDL needs no database
    response = post_raw(url, envelope(submit_body(sync_message("down-1")), security_header("TA", "any-key")))
    code, text = fault_of(response)
    assert code == "Server.Unavailable"
    assert "retry" in text and "nothing_here" not in text
    heartbeat = "<t:Heartbeat><t:info><t:AppVersion>1</t:AppVersion></t:info></t:Heartbeat>"
    assert fault_of(post_raw(url, envelope(heartbeat, security_header("TA", "k"))))[0] == "Server.Unavailable"
