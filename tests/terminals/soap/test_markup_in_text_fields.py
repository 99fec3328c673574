"""Regressions found by the chaos suite (scenario 8). 1: markup inside a text field.

spyne reads only a simple field's first text node, so ``<Payload>a<b/>c</Payload>`` used to be
Accepted and stored as "a", ``<Payload><xi:include .../></Payload>`` as an empty payload, and
``<MessageId><b>m</b></MessageId>`` answered Rejected "MessageId is missing": 200 answers with
silently emptied or cut fields. Now every such request is a Client.InvalidRequest fault and
nothing is stored; escaped markup and CDATA are still text.
"""

import pytest

from messages.models import Message
from tests.terminals.helpers import envelope, fault_of, post_raw, security_header
from tests.terminals.soap.test_guard import submit_body

pytestmark = pytest.mark.django_db(transaction=True)

XI = '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/hostname" parse="text"/>'


def message(mid="m1", key="SKU-1", payload="{}", mtype="product.upsert", seq="1") -> str:
    return (
        f"<t:SyncMessage><t:MessageId>{mid}</t:MessageId><t:MessageType>{mtype}</t:MessageType>"
        f"<t:EntityKey>{key}</t:EntityKey><t:Sequence>{seq}</t:Sequence>"
        f"<t:CreatedAt>2025-01-01T00:00:00Z</t:CreatedAt><t:Payload>{payload}</t:Payload></t:SyncMessage>"
    )


@pytest.mark.parametrize(
    "item",
    [
        message(payload="a<b>x</b>c"),
        message(payload=XI),
        message(mid="<b>m</b>"),
        message(mid="a<b/>c"),
        message(key="K<i/>"),
        message(mtype="product<x/>.upsert"),
        message(seq="1<x/>"),
    ],
)
def test_markup_inside_a_text_field_is_refused_not_cut(term_a, soap_url, item):
    terminal, key = term_a
    response = post_raw(soap_url, envelope(submit_body(item), security_header(terminal.code, key)))
    code, text = fault_of(response)
    assert code == "Client.InvalidRequest"
    assert "must be text" in text
    assert not Message.objects.exists()


def test_markup_inside_a_message_id_array_item_is_refused(term_a, soap_url):
    terminal, key = term_a
    body = "<t:GetMessageStatus><t:messageIds><t:string>a<b/>c</t:string></t:messageIds></t:GetMessageStatus>"
    code, _ = fault_of(post_raw(soap_url, envelope(body, security_header(terminal.code, key))))
    assert code == "Client.InvalidRequest"


def test_escaped_markup_and_cdata_are_still_text(term_a, soap_url):
    terminal, key = term_a
    body = submit_body(
        message(mid="e1", payload="a&lt;b&gt;x&lt;/b&gt;c"),
        message(mid="e2", payload="<![CDATA[a<b>x</b>c]]>"),
        # comments and PIs are not character data: the parser drops them and joins the text
        message(mid="e3", payload="a<!-- not content -->b<?pi x?>c"),
    )
    response = post_raw(soap_url, envelope(body, security_header(terminal.code, key)))
    assert response.status_code == 200, response.text[:300]
    stored = dict(Message.objects.values_list("message_id", "payload"))
    assert stored == {"e1": "a<b>x</b>c", "e2": "a<b>x</b>c", "e3": "abc"}


# --- Regression (found by chaos scenario 8 against gunicorn): chunked request bodies ----------------
# Django reads a body only up to CONTENT_LENGTH, so a chunked request (no Content-Length) was
# parsed as an empty document: a legitimate streamed SubmitMessages answered InvalidRequest and
# an oversize chunked body was never recognised as too large. gunicorn de-chunks wsgi.input; the
# test client stands in for it with the de-chunked bytes and the header.


def chunked_post(body: bytes):
    import io

    from django.test import RequestFactory

    from terminals.soap import terminal_soap_view

    request = RequestFactory().post("/soap/terminal/v1/", data=b"", content_type="text/xml; charset=utf-8")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.META["CONTENT_TYPE"] = "text/xml; charset=utf-8"
    request.META["wsgi.input"] = io.BytesIO(body)
    return terminal_soap_view(request)


def test_a_chunked_submit_is_read_and_stored(term_a):
    terminal, key = term_a
    response = chunked_post(envelope(submit_body(message(mid="c1")), security_header(terminal.code, key)).encode())
    assert response.status_code == 200, response.content[:300]
    assert list(Message.objects.values_list("message_id", flat=True)) == ["c1"]


def test_an_oversize_chunked_body_is_batch_too_large(term_a, settings):
    terminal, key = term_a
    settings.SYNC_MAX_BODY_BYTES = 10_000
    body = envelope(submit_body(message(mid="c2", payload="x" * 20_000)), security_header(terminal.code, key))
    response = chunked_post(body.encode())
    assert response.status_code == 500 and b"Client.BatchTooLarge" in response.content
    assert not Message.objects.exists()
