"""SubmitMessages read and answered without spyne's generic (de)serialisers: the hot path.

spyne reads a request by walking its type tree for every element and writes the answer the
same way; for a batch of 100 messages that was most of the protocol's cost. For the one
operation that carries volume, GuardedSoap11 uses the two functions below instead. Everything
that guards a request still runs first (size limit, DOCTYPE refusal, the non-expanding parse,
markup in text fields, operation lookup, the WS-Security header), and the result is exact by
construction:

- ``read_sync_messages`` accepts only the plain shape the WSDL describes: one ``messages``
  element holding ``SyncMessage`` elements, each holding at most one of each of the six fields,
  all in the contract's namespace, without attributes. Numbers and dates are read by the same
  strict readers (terminals/soap/xsd.py) GuardedSoap11 gives spyne, so a value means the same
  on both paths. For anything else, and for a value those readers refuse, it returns None and
  spyne reads the request (spyne's own structural leniency included: it ignores unknown
  elements and namespaces of fields), answering with the same values or the fault naming the
  field. tests/terminals/soap/test_submit.py compares the two paths on a corpus.
- ``render_submit_response`` writes the per-message results byte for byte as spyne's
  serialiser does (same prefixes, same escaping as lxml).
"""

from __future__ import annotations

from terminals.soap.contract import NS, SOAP_ENV_NS
from terminals.soap.xsd import XsdValueError, collapse, parse_datetime, parse_integer

_Q = "{" + NS + "}"
_MESSAGES = _Q + "messages"
_ITEM = _Q + "SyncMessage"
_ID, _TYPE, _KEY, _SEQUENCE, _CREATED, _PAYLOAD = (
    _Q + name for name in ("MessageId", "MessageType", "EntityKey", "Sequence", "CreatedAt", "Payload")
)
_FIELDS = frozenset([_ID, _TYPE, _KEY, _SEQUENCE, _CREATED, _PAYLOAD])
_ABSENT = object()


class SyncMessageIn:
    """A SyncMessage as read from the request: the attributes of spyne's SyncMessage type."""

    __slots__ = ("MessageId", "MessageType", "EntityKey", "Sequence", "CreatedAt", "Payload")

    def __init__(self, MessageId, MessageType, EntityKey, Sequence, CreatedAt, Payload):  # noqa: N803
        self.MessageId = MessageId
        self.MessageType = MessageType
        self.EntityKey = EntityKey
        self.Sequence = Sequence
        self.CreatedAt = CreatedAt
        self.Payload = Payload


def read_sync_messages(body) -> list[SyncMessageIn] | None:
    """The items of a ``SubmitMessages`` body element, or None: let spyne read this one.

    ``body`` has passed GuardedSoap11.create_in_document (no markup inside a text field).
    """
    if body.attrib:
        return None
    if len(body) == 0:
        return []  # no messages element: spyne passes None, which the operation treats as []
    if len(body) != 1:
        return None
    wrapper = body[0]
    if wrapper.tag != _MESSAGES or wrapper.attrib:
        return None
    out = []
    for item in wrapper:
        if item.tag != _ITEM or item.attrib:
            return None
        values: dict[str, str | None] = {}
        for field in item:
            # (A field holding markup never gets here: the guard refuses it with its own fault.)
            tag = field.tag
            if tag not in _FIELDS or tag in values or field.attrib:
                return None
            values[tag] = field.text  # None for an empty element
        get = values.get
        # Absent, empty or blank: None (as spyne reads them); a value the reader refuses: spyne
        # reads the request and answers with the fault that names the field and the item.
        sequence, created = get(_SEQUENCE), get(_CREATED)
        try:
            sequence = parse_integer(sequence, "long") if sequence and collapse(sequence) else None
            created = parse_datetime(created) if created and collapse(created) else None
        except XsdValueError:
            return None
        # A text field: None when absent, "" when empty (as spyne reads them).
        mid, mtype, key, payload = get(_ID, _ABSENT), get(_TYPE, _ABSENT), get(_KEY, _ABSENT), get(_PAYLOAD, _ABSENT)
        out.append(
            SyncMessageIn(
                None if mid is _ABSENT else mid or "",
                None if mtype is _ABSENT else mtype or "",
                None if key is _ABSENT else key or "",
                sequence,
                created,
                None if payload is _ABSENT else payload or "",
            )
        )
    return out


# --- the response ------------------------------------------------------------------------------

_HEAD = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV_NS}" xmlns:tns="{NS}"><soap11env:Body>'
    "<tns:SubmitMessagesResponse>"
)
_TAIL = "</tns:SubmitMessagesResponse></soap11env:Body></soap11env:Envelope>"
_EMPTY = (_HEAD + "<tns:SubmitMessagesResult/>" + _TAIL).encode("utf-8")


def _escape(text: str) -> str:
    """Text content escaped as lxml writes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def render_submit_response(results) -> bytes:
    """The SubmitMessages response for ``results`` (objects with message_id, status, reason).

    A result's reason is written only when it is not empty, as spyne omits a None field.
    """
    if not results:
        return _EMPTY
    parts = [_HEAD, "<tns:SubmitMessagesResult>"]
    append = parts.append
    for r in results:
        append(f"<tns:SubmitResult><tns:MessageId>{_escape(r.message_id)}</tns:MessageId>")
        append(f"<tns:Status>{_escape(r.status)}</tns:Status>")
        if r.reason:
            append(f"<tns:Reason>{_escape(r.reason)}</tns:Reason>")
        append("</tns:SubmitResult>")
    append("</tns:SubmitMessagesResult>")
    append(_TAIL)
    return "".join(parts).encode("utf-8")
