"""SubmitMessages read and answered without spyne's generic (de)serialisers: the hot path.

spyne reads a request by walking its type tree for every element and writes the answer the
same way; for a batch of 100 messages that was most of the protocol's cost. For the one
operation that carries volume, GuardedSoap11 uses the two functions below instead. Everything
that guards a request still runs first (size limit, DOCTYPE refusal, the non-expanding parse,
markup in text fields, operation lookup, the WS-Security header), and the result is exact by
construction:

- ``read_sync_messages`` accepts only the plain shape the WSDL describes: one ``messages``
  element holding ``SyncMessage`` elements, each holding at most one of each of the six fields,
  all in the contract's namespace, without attributes, numbers and dates in their plain form.
  For anything else it returns None and spyne reads the request exactly as before, so odd or
  wrong input gets exactly the answer or fault it always got (spyne's own quirks included:
  it ignores unknown elements and namespaces of fields, accepts ``<Sequence> 7 </Sequence>``
  or a date followed by anything, and so on). What it accepts, it reads to the very values
  spyne produces (tests/terminals/test_soap_submit_fast.py compares the two on a corpus).
- ``render_submit_response`` writes the per-message results byte for byte as spyne's
  serialiser does (same prefixes, same escaping as lxml).
"""

from __future__ import annotations

import re
from datetime import datetime

from terminals.soap.contract import NS, SOAP_ENV_NS

_Q = "{" + NS + "}"
_MESSAGES = _Q + "messages"
_ITEM = _Q + "SyncMessage"
_ID, _TYPE, _KEY, _SEQUENCE, _CREATED, _PAYLOAD = (
    _Q + name for name in ("MessageId", "MessageType", "EntityKey", "Sequence", "CreatedAt", "Payload")
)
_FIELDS = frozenset([_ID, _TYPE, _KEY, _SEQUENCE, _CREATED, _PAYLOAD])
_ABSENT = object()

# Plain forms only: what spyne's int() and its ISO regexes read to the same value.
_LONG = re.compile(r"[-+]?[0-9]{1,18}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|([-+])[0-9]{2}:([0-9]{2}))?"
)


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
        sequence = get(_SEQUENCE, _ABSENT)
        if sequence is _ABSENT:
            sequence = None
        elif sequence is None or not _LONG.fullmatch(sequence):
            return None
        else:
            sequence = int(sequence)
        created = get(_CREATED, _ABSENT)
        if created is _ABSENT:
            created = None
        elif created is None or (created := _datetime(created)) is None:
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


def _datetime(value: str) -> datetime | None:
    match = _DATETIME.fullmatch(value)
    if match is None or not "0001" < value[:4] < "9999":
        # (at the ends of datetime's range spyne's bounds check has the last word)
        return None
    sign, tz_minutes = match.groups()
    if sign == "-" and tz_minutes != "00":
        # spyne reads "-05:30" as -04:30 (it adds the minutes to the negative hours): keep
        # exactly its answer by letting it read such a request.
        return None
    try:
        # For this form, the same value as spyne's (naive without an offset; fraction of 1-6
        # digits to the same microsecond); out-of-range fields and offsets raise.
        return datetime.fromisoformat(value)
    except ValueError:
        return None  # e.g. month 13 or offset +05:75: spyne answers with its own fault or value


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
