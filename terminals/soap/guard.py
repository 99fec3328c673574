"""The XML guard and fault mapping: DTDs refused, parse errors into contract faults, logs capped."""

from __future__ import annotations

import logging

from lxml import etree
from spyne import Fault
from spyne.const.http import HTTP_500
from spyne.error import ResourceNotFoundError
from spyne.protocol.soap import Soap11
from spyne.server.http import HttpTransportContext

from terminals.soap.contract import (
    CONTRACT_FAULTS,
    FORBIDDEN_XML,
    INVALID_REQUEST,
    SOAP_ENV_NS,
)
from terminals.soap.submit import read_sync_messages, render_submit_response
from terminals.soap.types import SIMPLE_FIELDS, SubmitResult

log = logging.getLogger("terminals.soap")


# --- log cap ---------------------------------------------------------------------------------------

LOG_RECORD_LIMIT = 1000


def _clip(text: str, limit: int = LOG_RECORD_LIMIT) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters not logged]"


class ClipRecords(logging.Filter):
    """spyne logs whole request bodies and fault strings at ERROR: keep each record small.

    A 2 MB unparseable body would otherwise land in the log verbatim (and with it anything
    a caller put in it). Client-fault tracebacks are dropped: they say nothing about us.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = _clip(message), None
        exc = record.exc_info[1] if record.exc_info else None
        if (
            record.name.startswith("spyne.application.client")
            or (isinstance(exc, Fault) and str(exc.faultcode).startswith("Client"))
            or message.startswith("Fault(Client")
        ):
            # A client's mistake is not our error: we log it ourselves where it is useful.
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        elif record.exc_info:
            record.exc_text = _clip(logging.Formatter().formatException(record.exc_info), 4000)
            record.exc_info = None
        return True


def _clip_spyne_logs() -> None:
    # A filter on a logger only sees records logged to that very logger, so attach it to
    # every spyne logger that exists once spyne's modules are imported (they all are by now).
    clip = ClipRecords()
    names = [n for n in logging.root.manager.loggerDict if n == "spyne" or n.startswith("spyne.")]
    for name in names + ["terminals.soap"]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClipRecords) for f in logger.filters):
            logger.addFilter(clip)


# --- protocol: the XML guard --------------------------------------------------------------------


class GuardedSoap11(Soap11):
    """Soap11 that refuses DTDs, maps every parse/validation error to the contract's faults.

    SubmitMessages, the operation that carries volume, is read and answered by submit.py
    rather than spyne's generic (de)serialisers, after the same guards; a request it does not
    read (anything but the plain shape) is read by spyne as before.
    """

    # False: SubmitMessages is read and written by spyne too (the tests compare the two).
    fast_submit = True

    def create_in_document(self, ctx, charset=None):
        if isinstance(ctx.transport, HttpTransportContext):
            if ctx.transport.get_request_method() != "POST" or not ctx.transport.get_request_content_type():
                raise Fault(INVALID_REQUEST, "POST a SOAP 1.1 envelope with Content-Type text/xml")
        chunks = list(ctx.in_string)
        data = b"".join(c if isinstance(c, bytes) else c.encode("utf-8") for c in chunks)
        try:
            root = etree.fromstring(data, etree.XMLParser(**self.parser_kwargs))
        except etree.XMLSyntaxError as exc:
            if "entity" in str(exc).lower():
                # libxml2's own guard (e.g. amplification) tripped: an entity trick, not a typo.
                log.warning("SOAP request with entity tricks refused: %s", _clip(str(exc), 300))
                raise Fault(FORBIDDEN_XML, "entity references are not accepted") from None
            log.info("malformed SOAP request: %s", _clip(str(exc), 300))
            raise Fault(INVALID_REQUEST, f"malformed XML: {_clip(str(exc), 300)}") from None
        except ValueError as exc:
            raise Fault(INVALID_REQUEST, f"unreadable XML: {_clip(str(exc), 300)}") from None
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            log.warning("SOAP request with a DOCTYPE refused after parsing (non-ASCII-compatible encoding)")
            raise Fault(FORBIDDEN_XML, "DOCTYPE, entity declarations and external references are not accepted")
        field = _markup_in_simple_field(root)
        if field:
            raise Fault(INVALID_REQUEST, f"{field} must be text: escape markup in it or wrap it in CDATA")
        ctx.in_document = (root, {})

    def decompose_incoming_envelope(self, ctx, message=Soap11.REQUEST):
        try:
            super().decompose_incoming_envelope(ctx, message)
        except Exception as exc:
            raise _invalid(exc) from None

    def generate_method_contexts(self, ctx):
        try:
            return super().generate_method_contexts(ctx)
        except ResourceNotFoundError:
            raise Fault(INVALID_REQUEST, f"unknown operation {_clip(str(ctx.method_request_string), 200)}") from None

    def deserialize(self, ctx, message):
        try:
            if not (message is self.REQUEST and self.fast_submit and _is_submit(ctx) and self._read_submit(ctx)):
                super().deserialize(ctx, message)
        except Exception as exc:
            raise _invalid(exc) from None

    def _read_submit(self, ctx) -> bool:
        """Soap11.deserialize for a plain SubmitMessages request; False: spyne must read it."""
        body = ctx.in_body_doc
        messages = read_sync_messages(body) if body is not None and body.tag != _FAULT else None
        if messages is None:
            return False
        self.event_manager.fire_event("before_deserialize", ctx)
        # The headers exactly as Soap11.deserialize reads them (a malformed one is a fault).
        header_classes = ctx.descriptor.in_header
        if ctx.in_header_doc is not None and header_classes is not None:
            by_tag = {element.tag: element for element in ctx.in_header_doc}
            headers = [None] * len(header_classes)
            for i, header_class in enumerate(header_classes):
                element = by_tag.get(f"{{{header_class.__namespace__}}}{header_class.__type_name__}")
                if element is not None:
                    headers[i] = self.from_element(ctx, header_class, element)
            ctx.in_header = headers[0] if len(headers) == 1 else headers
        ctx.in_object = [messages]
        self.event_manager.fire_event("after_deserialize", ctx)
        return True

    def serialize(self, ctx, message):
        if message is self.RESPONSE and ctx.out_error is None and _is_submit(ctx):
            # The operation returns the ingest's results as they are (no spyne objects to build).
            (results,) = ctx.out_object
            if self.fast_submit:
                self.event_manager.fire_event("before_serialize", ctx)
                ctx.out_string = [render_submit_response(results)]
                self.event_manager.fire_event("after_serialize", ctx)
                return
            ctx.out_object = [
                [SubmitResult(MessageId=r.message_id, Status=r.status, Reason=r.reason or None) for r in results or ()]
            ]
        super().serialize(ctx, message)

    def create_out_string(self, ctx, charset=None):
        if ctx.out_string is None:  # else serialize has written the SubmitMessages response
            super().create_out_string(ctx, charset)

    def fault_to_http_response_code(self, fault):
        # SOAP 1.1 (and WCF) expect every fault with HTTP 500; the body says what it is.
        return HTTP_500


_FAULT = f"{{{SOAP_ENV_NS}}}Fault"


def _is_submit(ctx) -> bool:
    return ctx.descriptor is not None and ctx.descriptor.name == "SubmitMessages"


def _markup_in_simple_field(root) -> str | None:
    """The name of a text-valued field that holds a child element, if any.

    spyne reads such a field's first text node only, so ``<Payload>a<b/>c</Payload>`` would
    be stored as "a" and ``<MessageId><x/></MessageId>`` as a missing id: a 200 answer with a
    silently emptied or cut field. (Comments and PIs are dropped by the parser, which joins
    the text around them.) Found by the chaos suite's hostile-input corpus.
    """
    body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    # Only the elements named like a text field (in any namespace), in document order.
    for element in body.iter(*_SIMPLE_FIELD_TAGS) if body is not None else ():
        if len(element):
            return etree.QName(element).localname
    return None


_SIMPLE_FIELD_TAGS = ["{*}" + name for name in sorted(SIMPLE_FIELDS)]


def _invalid(exc: Exception) -> Fault:
    if isinstance(exc, Fault) and exc.faultcode in CONTRACT_FAULTS:
        return exc
    detail = exc.faultstring if isinstance(exc, Fault) else str(exc)
    return Fault(INVALID_REQUEST, f"invalid request: {_clip(str(detail), 300)}")


_WIDE_ENCODINGS = [
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00<\x00", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
]


def _ascii_view(body: bytes) -> bytes:
    """The start of the body in an ASCII-compatible form, so UTF-16/32 cannot hide a DOCTYPE."""
    for mark, encoding in _WIDE_ENCODINGS:
        if body.startswith(mark):
            head = body[: 1024 * 1024]
            return head.decode(encoding, errors="ignore").lstrip("\ufeff").encode("utf-8")
    return body


def has_doctype_in_prolog(body: bytes) -> bool:
    """True if the document's prolog (everything before the root element) has a DOCTYPE.

    Only the prolog can hold a DOCTYPE, so a payload that mentions "<!DOCTYPE" inside a CDATA
    section is not refused. UTF-8/ASCII and UTF-16/32 are read; anything more exotic is still
    caught after parsing (docinfo), and the parser never expands entities either way.
    """
    body = _ascii_view(body)
    i, n = 0, len(body)
    if body.startswith(b"\xef\xbb\xbf"):
        i = 3
    while i < n:
        while i < n and body[i] in b" \t\r\n":
            i += 1
        if body.startswith(b"<?", i):
            end = body.find(b"?>", i + 2)
            if end < 0:
                return False
            i = end + 2
        elif body.startswith(b"<!--", i):
            end = body.find(b"-->", i + 4)
            if end < 0:
                return False
            i = end + 3
        else:
            return body.startswith(b"<!DOCTYPE", i) or body.startswith(b"<!ENTITY", i)
    return False
