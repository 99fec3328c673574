"""The Django view: size and prolog checks before spyne, the WSDL fix-up, faults answered early."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from xml.sax.saxutils import escape

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from lxml import etree

from syncadmin.lib.client_address import client_ip
from terminals.soap.contract import BATCH_TOO_LARGE, FORBIDDEN_XML, INVALID_REQUEST, NS, SOAP_ENV_NS
from terminals.soap.guard import has_doctype_in_prolog
from terminals.soap.observed import OBSERVED_MARK, soap_request_observed
from terminals.soap.service import server
from terminals.soap.xsd import quote

log = logging.getLogger("terminals.soap")


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


SOAP_MEDIA_TYPES = frozenset(["text/xml", "application/soap+xml"])


def _not_soap_content_type(content_type: str) -> str | None:
    """Why a request's Content-Type is not SOAP's, or None when it is (parameters allowed)."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type in SOAP_MEDIA_TYPES:
        return None
    if not media_type:
        return "the request has no Content-Type: send the SOAP 1.1 envelope as text/xml"
    return f"Content-Type {quote(content_type, 100)} is not SOAP: send the SOAP 1.1 envelope as text/xml"


_FAULTCODE = re.compile(rb"<faultcode>(?:[^<:]*:)?([^<]+)</faultcode>")


@csrf_exempt
def terminal_soap_view(request):
    """The SOAP endpoint: size and prolog checks, then spyne (auth is in TerminalApplication)."""
    started = time.perf_counter()
    observed = request.META[OBSERVED_MARK] = []
    response = _terminal_soap_view(request)
    if request.method == "POST" and not observed:
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
        refused = _not_soap_content_type(request.META.get("CONTENT_TYPE", ""))
        if refused:
            return fault_response(INVALID_REQUEST, refused)
        if has_doctype_in_prolog(body):
            log.warning("SOAP request with a DOCTYPE refused from %s", client_ip(request) or "?")
            return fault_response(
                FORBIDDEN_XML, "DOCTYPE, entity declarations and external references are not accepted"
            )
        request.META["wsgi.input"] = io.BytesIO(body)
        request.META["CONTENT_LENGTH"] = str(len(body))
    try:
        response = server(request)
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
