"""Regression (found by the chaos suite, scenario 8): markup inside a text field.

spyne reads only a simple field's first text node, so ``<Payload>a<b/>c</Payload>`` used to be
Accepted and stored as "a", ``<Payload><xi:include .../></Payload>`` as an empty payload, and
``<MessageId><b>m</b></MessageId>`` answered Rejected "MessageId is missing": 200 answers with
silently emptied or cut fields. Now every such request is a Client.InvalidRequest fault and
nothing is stored; escaped markup and CDATA are still text.
"""

import pytest

from messages.models import Message
from tests.terminals.helpers import envelope, fault_of, post_raw, security_header
from tests.terminals.test_soap_hardening import submit_body

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
