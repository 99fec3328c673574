"""The terminal SOAP API: spyne inside Django, to the contract in shared/terminal-api.md.

Thin on purpose: parse, authenticate once per request, call services/selectors, render.
The hardening lives here because it is about the wire, not the business:

- Body size is checked before anything is parsed, and a DOCTYPE (the only place an entity
  declaration or an external reference can come from) is refused with ``Client.ForbiddenXml``
  twice: once on the raw prolog (cheap, before lxml sees a byte), and once on the parsed
  document's docinfo for encodings the byte scan cannot read. The parser keeps spyne's safe
  defaults (no entity resolution, no network, no DTD loading, no huge trees).
- Every parser/validator error becomes ``Client.InvalidRequest``; a database that cannot be
  reached becomes ``Server.Unavailable``; anything unexpected becomes a bare ``Server`` fault
  with a reference, never a traceback or an HTML page.
- spyne has no WS-Security: the ``wsse:Security/UsernameToken`` header is read from the raw
  header elements (declared in the WSDL so clients see it) and checked once per request.
"""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from lxml import etree
from spyne import Application, Array, ComplexModel, DateTime, Fault, Integer32, Integer64, ServiceBase, Unicode, rpc
from spyne.const.http import HTTP_500
from spyne.error import ResourceNotFoundError
from spyne.protocol.soap import Soap11
from spyne.server.django import DjangoApplication
from spyne.server.http import HttpTransportContext

from messages import outbound, selectors
from messages.services import Envelope, message_ingest_batch
from reconciliation.services import CountReport, InvalidCountReport, reported_counts_store
from syncadmin.observability import soap_request, soap_request_observed
from terminals import services as terminal_services

log = logging.getLogger(__name__)

NS = "urn:syncadmin:terminal:v1"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_UPDATES = 500

# Fault codes are the contract (see shared/terminal-api.md).
AUTH_FAILED = "Client.AuthenticationFailed"
TERMINAL_DISABLED = "Client.TerminalDisabled"
BATCH_TOO_LARGE = "Client.BatchTooLarge"
INVALID_REQUEST = "Client.InvalidRequest"
FORBIDDEN_XML = "Client.ForbiddenXml"
UNAVAILABLE = "Server.Unavailable"
CONTRACT_FAULTS = {AUTH_FAILED, TERMINAL_DISABLED, BATCH_TOO_LARGE, INVALID_REQUEST, FORBIDDEN_XML, UNAVAILABLE}

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
    for name in names + [__name__]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClipRecords) for f in logger.filters):
            logger.addFilter(clip)


# --- types -----------------------------------------------------------------------------------------


class _Type(ComplexModel):
    __namespace__ = NS


class SyncMessage(_Type):
    _type_info = [
        ("MessageId", Unicode),
        ("MessageType", Unicode),
        ("EntityKey", Unicode),
        ("Sequence", Integer64),
        ("CreatedAt", DateTime),
        ("Payload", Unicode),
    ]


class SubmitResult(_Type):
    _type_info = [("MessageId", Unicode), ("Status", Unicode), ("Reason", Unicode)]


class MessageStatus(_Type):
    _type_info = [
        ("MessageId", Unicode),
        ("State", Unicode),
        ("Attempts", Integer32),
        ("LastError", Unicode),
        ("UpdatedAt", DateTime),
    ]


class Update(_Type):
    _type_info = [
        ("UpdateId", Unicode),
        ("UpdateType", Unicode),
        ("EntityKey", Unicode),
        ("Payload", Unicode),
        ("CreatedAt", DateTime),
    ]


class AckResult(_Type):
    _type_info = [("Acknowledged", Integer32)]


class HeartbeatInfo(_Type):
    _type_info = [("AppVersion", Unicode), ("LocalBacklog", Integer32), ("TerminalTime", DateTime)]


class HeartbeatReply(_Type):
    _type_info = [("ServerTime", DateTime), ("PendingUpdates", Integer32)]


class EntityCount(_Type):
    _type_info = [("EntityType", Unicode), ("Count", Integer64), ("AsOf", DateTime)]


class ReportReply(_Type):
    _type_info = [("Received", Integer32)]


# Every text-valued field of a request (the arrays' items are named "string").
SIMPLE_FIELDS = frozenset(
    [name for model in (SyncMessage, HeartbeatInfo, EntityCount) for name, _ in model._type_info.items()]
    + ["maxCount", "string"]
)


# The WS-Security header as the WSDL declares it. It is only a declaration for clients: the
# credentials are read from the raw header elements (see _credentials), so a WCF header with
# mustUnderstand, a Timestamp or a Password Type attribute is read the same way.
class UsernameToken(ComplexModel):
    __namespace__ = WSSE_NS
    _type_info = [("Username", Unicode), ("Password", Unicode)]


class Security(ComplexModel):
    __namespace__ = WSSE_NS
    _type_info = [("UsernameToken", UsernameToken)]


# --- authentication -------------------------------------------------------------------------------


def _credentials(header_elements) -> tuple[str | None, str | None]:
    for element in header_elements or ():
        if element.tag != f"{{{WSSE_NS}}}Security":
            continue
        token = element.find(f"{{{WSSE_NS}}}UsernameToken")
        if token is None:
            continue
        username = (token.findtext(f"{{{WSSE_NS}}}Username") or "").strip()
        password = token.find(f"{{{WSSE_NS}}}Password")
        if password is None or password.get("Type", PASSWORD_TEXT) != PASSWORD_TEXT:
            return username, None  # PasswordDigest is not offered: a digest never matches
        return username, password.text or ""
    return None, None


def _client_address(ctx) -> str:
    env = getattr(ctx.transport, "req_env", None) or {}
    return env.get("REMOTE_ADDR", "?")


def _authenticate(ctx):
    code, key = _credentials(ctx.in_header_doc)
    terminal = terminal_services.terminal_authenticate(code=code, key=key) if code and key else None
    if terminal is None:
        # Never the password; the code is clipped and repr'd so a hostile one cannot forge log lines.
        log.warning(
            "terminal authentication failed: code=%r client=%s operation=%s",
            (code or "")[:64],
            _client_address(ctx),
            ctx.method_request_string,
        )
        raise Fault(AUTH_FAILED, "authentication failed")
    if not terminal.enabled:
        log.warning("disabled terminal refused: code=%s client=%s", terminal.code, _client_address(ctx))
        raise Fault(TERMINAL_DISABLED, "this terminal is disabled; contact support")
    terminal_services.terminal_mark_seen(terminal=terminal)
    return terminal


class RequestContext:
    def __init__(self, terminal, trace_id: str):
        self.terminal = terminal
        self.trace_id = trace_id


class TerminalApplication(Application):
    def call_wrapper(self, ctx):
        """Authenticate once, run the operation, and turn infrastructure errors into faults.

        The whole call is observed (metrics by operation and fault code, a span, the log
        context): its trace id is stored on every message the call ingests.
        """
        operation = ctx.descriptor.name if ctx.descriptor else "unknown"
        env = getattr(ctx.transport, "req_env", None)
        if env is None:
            env = {}
        env["syncadmin.soap_observed"] = True  # the view counts calls that never got this far
        with soap_request(operation, headers=env) as call:
            try:
                terminal = _authenticate(ctx)
                call.set_terminal(terminal.code)
                ctx.udc = RequestContext(terminal, call.trace_id)
                return super().call_wrapper(ctx)
            except Fault:
                raise
            except (OperationalError, InterfaceError) as exc:
                log.warning("database unavailable during %s [%s]: %s", operation, call.trace_id, exc)
                raise Fault(UNAVAILABLE, "the hub's database is unavailable; nothing was stored, retry later") from exc
            except Exception as exc:
                log.exception("unexpected error in %s [%s]", operation, call.trace_id)
                raise Fault("Server", f"internal error (reference {call.trace_id})") from exc


# --- protocol: the XML guard --------------------------------------------------------------------


class GuardedSoap11(Soap11):
    """Soap11 that refuses DTDs, maps every parse/validation error to the contract's faults."""

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
            super().deserialize(ctx, message)
        except Exception as exc:
            raise _invalid(exc) from None

    def fault_to_http_response_code(self, fault):
        # SOAP 1.1 (and WCF) expect every fault with HTTP 500; the body says what it is.
        return HTTP_500


def _markup_in_simple_field(root) -> str | None:
    """The name of a text-valued field that holds a child element, if any.

    spyne reads such a field's first text node only, so ``<Payload>a<b/>c</Payload>`` would
    be stored as "a" and ``<MessageId><x/></MessageId>`` as a missing id: a 200 answer with a
    silently emptied or cut field. (Comments and PIs are dropped by the parser, which joins
    the text around them.) Found by the chaos suite's hostile-input corpus.
    """
    body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    for element in body.iter() if body is not None else ():
        if len(element) and isinstance(element.tag, str) and etree.QName(element).localname in SIMPLE_FIELDS:
            return etree.QName(element).localname
    return None


def _invalid(exc: Exception) -> Fault:
    if isinstance(exc, Fault) and exc.faultcode in CONTRACT_FAULTS:
        return exc
    detail = exc.faultstring if isinstance(exc, Fault) else str(exc)
    return Fault(INVALID_REQUEST, f"invalid request: {_clip(str(detail), 300)}")


# --- the service ----------------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    # xs:dateTime without an offset is taken as UTC: Django stores aware datetimes only.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _bounded(items, what: str) -> list:
    items = list(items or [])
    if len(items) > settings.SYNC_MAX_BATCH:
        raise Fault(BATCH_TOO_LARGE, f"{len(items)} {what} in one call; at most {settings.SYNC_MAX_BATCH}")
    return items


class TerminalSyncService(ServiceBase):
    __in_header__ = Security

    @rpc(Array(SyncMessage), _returns=Array(SubmitResult))
    def SubmitMessages(ctx, messages):
        envelopes = [
            Envelope(
                message_id=m.MessageId,
                message_type=m.MessageType,
                entity_key=m.EntityKey,
                sequence=m.Sequence,
                created_at=_aware(m.CreatedAt),
                payload=m.Payload,
            )
            if m is not None
            else Envelope(None, None, None, None, None, None)
            for m in _bounded(messages, "messages")
        ]
        results = message_ingest_batch(terminal=ctx.udc.terminal, envelopes=envelopes, trace_id=ctx.udc.trace_id)
        return [SubmitResult(MessageId=r.message_id, Status=r.status, Reason=r.reason or None) for r in results]

    @rpc(Array(Unicode), _returns=Array(MessageStatus))
    def GetMessageStatus(ctx, messageIds):
        ids = _bounded(messageIds, "message ids")
        found = selectors.message_statuses(terminal=ctx.udc.terminal, message_ids=ids)
        out = []
        for message_id in ids:
            m = found.get(message_id)
            if m is None:
                out.append(MessageStatus(MessageId=message_id, State="Unknown", Attempts=0))
            else:
                out.append(
                    MessageStatus(
                        MessageId=message_id,
                        State=m.state,
                        Attempts=m.attempts,
                        LastError=m.last_error or None,
                        UpdatedAt=m.updated_at,
                    )
                )
        return out

    @rpc(Integer32, _returns=Array(Update))
    def FetchUpdates(ctx, maxCount):
        if maxCount is None or not 1 <= maxCount <= MAX_UPDATES:
            raise Fault(INVALID_REQUEST, f"maxCount must be between 1 and {MAX_UPDATES}")
        updates = outbound.update_fetch(terminal=ctx.udc.terminal, max_count=maxCount)
        return [
            Update(
                UpdateId=u.update_id,
                UpdateType=u.update_type,
                EntityKey=u.entity_key,
                Payload=u.payload,
                CreatedAt=u.created_at,
            )
            for u in updates
        ]

    @rpc(Array(Unicode), _returns=AckResult)
    def AckUpdates(ctx, updateIds):
        ids = [i for i in _bounded(updateIds, "update ids") if i]
        return AckResult(Acknowledged=outbound.update_ack(terminal=ctx.udc.terminal, update_ids=ids) if ids else 0)

    @rpc(HeartbeatInfo, _returns=HeartbeatReply)
    def Heartbeat(ctx, info):
        info = info or HeartbeatInfo()
        terminal = ctx.udc.terminal
        server_time = terminal_services.terminal_heartbeat(
            terminal=terminal,
            app_version=info.AppVersion,
            local_backlog=info.LocalBacklog,
            terminal_time=_aware(info.TerminalTime),
        )
        return HeartbeatReply(ServerTime=server_time, PendingUpdates=outbound.update_pending_count(terminal=terminal))

    @rpc(Array(EntityCount), _returns=ReportReply)
    def ReportCounts(ctx, counts):
        reports = [
            CountReport(entity_type=c.EntityType, count=c.Count, as_of=_aware(c.AsOf))
            if c is not None
            else CountReport(None, None, None)
            for c in _bounded(counts, "counts")
        ]
        try:
            received = reported_counts_store(terminal=ctx.udc.terminal, counts=reports)
        except InvalidCountReport as exc:
            raise Fault(INVALID_REQUEST, str(exc)) from None
        return ReportReply(Received=received)


application = TerminalApplication(
    [TerminalSyncService],
    tns=NS,
    name="TerminalSyncService",
    # Soft validation: wrong types, malformed dates and numbers out of range are refused
    # before the operation runs. Lengths are deliberately not in the schema: an oversized
    # MessageId rejects that one message (the contract's "Rejected"), not the whole batch.
    in_protocol=GuardedSoap11(validator="soft"),
    out_protocol=GuardedSoap11(),
)

# The view below checks the body size itself (with its own fault), so spyne's own limit is
# only a backstop; big blocks avoid joining thousands of 8 KB chunks.
_server = DjangoApplication(application, max_content_length=2**62, block_length=1024 * 1024)
_clip_spyne_logs()


# --- the Django view --------------------------------------------------------------------------------


def fault_response(code: str, text: str) -> HttpResponse:
    """A SOAP 1.1 fault answered before spyne runs (size limit, DOCTYPE in the prolog)."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV_NS}"><soap11env:Body><soap11env:Fault>'
        f"<faultcode>soap11env:{escape(code)}</faultcode><faultstring>{escape(text)}</faultstring>"
        "</soap11env:Fault></soap11env:Body></soap11env:Envelope>"
    )
    response = HttpResponse(body.encode("utf-8"), status=500, content_type="text/xml; charset=utf-8")
    response._has_been_logged = True  # an expected client fault, not a server error for django.request
    return response


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


def _read_at_most(stream, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining > 0:
        chunk = stream.read(min(remaining, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _drain(request, length: int) -> None:
    # Read (and drop) what the client is still sending so it sees our fault rather than a
    # reset connection; give up past a few times the limit.
    remaining = min(length, 4 * settings.SYNC_MAX_BODY_BYTES)
    while remaining > 0:
        chunk = request.read(min(remaining, 1024 * 1024))
        if not chunk:
            break
        remaining -= len(chunk)


WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"


def fix_wsdl_header_refs(wsdl: bytes) -> bytes:
    """Point each binding's soap:header at the wsdl:message spyne actually defined.

    spyne 2.14 names the header message in the header type's namespace (wsse) although the
    message itself is defined in the WSDL's target namespace, so zeep and svcutil cannot
    resolve it. Our own document, so parsing it is safe.
    """
    root = etree.fromstring(wsdl)
    prefix = next((p for p, uri in root.nsmap.items() if uri == NS and p), None)
    for header in root.iter(f"{{{WSDL_SOAP_NS}}}header"):
        local = header.get("message", "").rpartition(":")[2]
        header.set("message", f"{prefix}:{local}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


_FAULTCODE = re.compile(rb"<faultcode>(?:[^<:]*:)?([^<]+)</faultcode>")


@csrf_exempt
def terminal_soap_view(request):
    """The SOAP endpoint: size and prolog checks, then spyne (auth is in TerminalApplication)."""
    started = time.perf_counter()
    response = _terminal_soap_view(request)
    if request.method == "POST" and not request.META.get("syncadmin.soap_observed"):
        # Refused before any operation ran (size, DOCTYPE, malformed XML): still counted.
        match = _FAULTCODE.search(response.content[:4096]) if response.status_code >= 400 else None
        fault = match.group(1).decode("ascii", "replace") if match else None
        soap_request_observed("unknown", fault, time.perf_counter() - started)
    return response


def _terminal_soap_view(request):
    if request.method == "POST":
        limit = settings.SYNC_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            _drain(request, declared)
            log.warning("SOAP body of %s bytes refused (limit %s)", declared, limit)
            return fault_response(BATCH_TOO_LARGE, f"request body is larger than {limit} bytes")
        if not declared and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Django reads a body only up to CONTENT_LENGTH, so a chunked request (WCF's streamed
            # transfer mode sends one) looked empty. The server hands us the de-chunked stream.
            body = _read_at_most(request.META["wsgi.input"], limit + 1)
        else:
            body = request.read(limit + 1)
        if len(body) > limit:
            return fault_response(BATCH_TOO_LARGE, f"request body is larger than {limit} bytes")
        if has_doctype_in_prolog(body):
            log.warning("SOAP request with a DOCTYPE refused from %s", request.META.get("REMOTE_ADDR", "?"))
            return fault_response(
                FORBIDDEN_XML, "DOCTYPE, entity declarations and external references are not accepted"
            )
        request.META["wsgi.input"] = io.BytesIO(body)
        request.META["CONTENT_LENGTH"] = str(len(body))
    try:
        response = _server(request)
        if request.method == "GET" and response.status_code == 200 and "wsdl" in request.GET:
            response.content = fix_wsdl_header_refs(response.content)
            response["Content-Length"] = str(len(response.content))
    except Exception:
        reference = uuid.uuid4().hex
        log.exception("SOAP request failed outside an operation [%s]", reference)
        return fault_response("Server", f"internal error (reference {reference})")
    if response.status_code >= 400:
        response._has_been_logged = True  # faults are logged above with their cause
    return response
