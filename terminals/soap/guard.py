"""The XML guard and fault mapping: DTDs refused, parse errors into contract faults, logs capped."""

from __future__ import annotations

import logging
import re

from lxml import etree
from spyne import DateTime, Fault, Integer
from spyne.const.http import HTTP_500
from spyne.const.xml import XSI
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
from terminals.soap.xsd import XsdValueError, collapse, parse_datetime, parse_integer, quote

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


def clip_spyne_logs() -> None:
    """Clip the log records of spyne's loggers (and ours), which may quote a whole request."""
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

    Numbers and dates are read by terminals/soap/xsd.py, not by spyne (which misreads negative
    half-hour offsets and accepts what Python's int() does), and every fault it raises names the
    field in the request's terms instead of passing spyne's or Python's message on.

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
            # libxml2's own words about the document (with line and column); lxml's suffix
            # "(<string>, line 1)" names a Python source, not the request: left out.
            raise Fault(INVALID_REQUEST, f"malformed XML: {_clip(exc.msg or 'not well-formed', 300)}") from None
        except ValueError as exc:
            log.info("unreadable SOAP request: %s", _clip(str(exc), 300))
            raise Fault(INVALID_REQUEST, "unreadable XML: not a document in an encoding this service reads") from None
        docinfo = root.getroottree().docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            log.warning("SOAP request with a DOCTYPE refused after parsing (non-ASCII-compatible encoding)")
            raise Fault(FORBIDDEN_XML, "DOCTYPE, entity declarations and external references are not accepted")
        field = _markup_in_simple_field(root)
        if field:
            raise Fault(INVALID_REQUEST, f"{field} must be text: escape markup in it or wrap it in CDATA")
        ctx.in_document = (root, {})

    def decompose_incoming_envelope(self, ctx, message=Soap11.REQUEST):
        # spyne's own answers to these are "'NoneType' object has no attribute 'tag'" and the like.
        root = ctx.in_document[0]
        if root.tag != _ENVELOPE:
            if root.tag == _SOAP12_ENVELOPE:
                raise Fault(INVALID_REQUEST, "SOAP 1.2 is not served here: send a SOAP 1.1 envelope")
            raise Fault(INVALID_REQUEST, f"not a SOAP 1.1 envelope: the root element must be {_ENVELOPE}")
        body = root.find(_BODY)
        if body is None:
            raise Fault(INVALID_REQUEST, "the SOAP envelope has no Body")
        if len(body) == 0:
            raise Fault(INVALID_REQUEST, "the SOAP Body is empty: it must hold the operation's element")
        if body[0].tag == _FAULT and message is self.REQUEST:
            raise Fault(INVALID_REQUEST, "a SOAP Fault is not a request: the Body must hold the operation's element")
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
        if message is self.REQUEST and ctx.in_object is None and ctx.in_error is None:
            # An xsi:nil operation element: spyne would call the operation with no arguments at all.
            raise Fault(INVALID_REQUEST, f"{etree.QName(ctx.in_body_doc).localname} must not be nil")

    # --- simple values: the strict readers of terminals/soap/xsd.py on every path ---------------
    # spyne turns text into values through these handlers (from_unicode / from_bytes), for the
    # body and the headers alike; its own read "-05:30" as -04:30 and "1_000" as 1000.

    def integer_from_bytes(self, cls, string):
        if isinstance(string, bytes):
            string = string.decode("utf-8")
        return None if not collapse(string) else parse_integer(string, cls.get_type_name())

    def datetime_from_unicode_iso(self, cls, string):
        # Soap11 reads xs:dateTime here; the other entry points below are spyne's for other
        # protocols and attributes, pointed at the same reader.
        return None if not collapse(string) else parse_datetime(string)

    def datetime_from_unicode(self, cls, string):
        return self.datetime_from_unicode_iso(cls, string)

    def datetime_from_bytes(self, cls, string):
        if isinstance(string, bytes):
            string = string.decode("utf-8")
        return self.datetime_from_unicode_iso(cls, string)

    def from_element(self, ctx, cls, element):
        """spyne's from_element, with every failure turned into a fault that names the field.

        Numbers and dates go straight to the strict readers: spyne's soft validation would first
        refuse an xs:long longer than 20 characters, surrounding whitespace or leading zeros
        included, which XML Schema allows. (An empty element stays "absent", as spyne reads it;
        whitespace alone is read the same way, since the whitespace facet collapses it to empty.)
        """
        try:
            xsi_type = element.get(_XSI_TYPE)
            if xsi_type is not None:
                _check_xsi_type(ctx, cls, element, xsi_type)
            elif issubclass(cls, _STRICT) and _XSI_NIL not in element.attrib:
                return self.from_unicode(cls, element.text)
            return super().from_element(ctx, cls, element)
        except XsdValueError as exc:
            raise Fault(INVALID_REQUEST, f"{_path(element)}: {exc}") from None
        except Fault as exc:
            if exc.faultcode in CONTRACT_FAULTS:
                raise
            raise _field_fault(element, cls, exc) from None
        except Exception as exc:
            raise _field_fault(element, cls, exc) from None

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
_ENVELOPE = f"{{{SOAP_ENV_NS}}}Envelope"
_BODY = f"{{{SOAP_ENV_NS}}}Body"
_HEADER = f"{{{SOAP_ENV_NS}}}Header"
_SOAP12_ENVELOPE = "{http://www.w3.org/2003/05/soap-envelope}Envelope"
_XSI_NIL, _XSI_TYPE = XSI("nil"), XSI("type")
_STRICT = (Integer, DateTime)


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


def _path(element) -> str:
    """Where ``element`` is, in the request's terms: ``messages/SyncMessage[3]/CreatedAt``.

    Relative to the operation (or header) element; an index only where a name repeats.
    """
    parts = []
    while element is not None:
        parent = element.getparent()
        if parent is None or parent.tag in (_BODY, _HEADER):
            break
        name = etree.QName(element).localname
        same = [child for child in parent if child.tag == element.tag]
        parts.append(name if len(same) == 1 else f"{name}[{same.index(element) + 1}]")
        element = parent
    return "/".join(reversed(parts))


def _check_xsi_type(ctx, cls, element, xsi_type: str) -> None:
    """Refuse an xsi:type that names another of the service's types than the element's own.

    spyne would build whatever type it names (an EntityCount where a SyncMessage belongs, a
    SyncMessage as the operation's arguments), and the operation would fail on it. Our types
    have no subtypes, so the only acceptable xsi:type is the element's own type.
    """
    prefix, _, local = xsi_type.rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    named = ctx.app.interface.classes.get(f"{{{namespace}}}{local}") if namespace is not None else None
    if named is None or not (issubclass(named, cls) or issubclass(cls, named)):
        path = _path(element)
        where = f"{path}: " if path else ""
        raise Fault(
            INVALID_REQUEST, f"{where}xsi:type {quote(xsi_type)} is not this element's type ({cls.get_type_name()})"
        )


_REPEATED = re.compile(r"'([^']{1,100})' member does not respect frequency constraints")


def _field_fault(element, cls, exc: Exception) -> Fault:
    """The fault for a value spyne could not read, in the request's terms (never spyne's text).

    spyne's own messages carry Python reprs (``datetime.datetime(..., tzinfo=pytz.FixedOffset(60))``,
    ``'NoneType' object has no attribute ...``): they are logged, not sent.
    """
    path = _path(element)
    log.info("SOAP value refused at %s: %s", path or element.tag, _clip(repr(exc), 300))
    where = f"{path}: " if path else ""
    repeated = _REPEATED.search(exc.faultstring) if isinstance(exc, Fault) else None
    if repeated:
        return Fault(INVALID_REQUEST, f"{where}{repeated.group(1)} appears more than once")
    return Fault(INVALID_REQUEST, f"{where}not a valid {cls.get_type_name()}")


def _invalid(exc: Exception) -> Fault:
    if isinstance(exc, Fault) and exc.faultcode in CONTRACT_FAULTS:
        return exc
    # Not one of our own faults: spyne's or Python's words, which are not the request's terms.
    log.info("SOAP request refused as invalid: %s", _clip(repr(exc), 300))
    return Fault(INVALID_REQUEST, "invalid request: it does not match the service's WSDL")


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
