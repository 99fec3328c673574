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
  header elements (declared in the WSDL so clients see it) and checked once per request,
  with its Timestamp/Nonce/Created when sent (wssecurity.py: the replay defence).
- Numbers and dates are read by strict XML Schema readers on every path (xsd.py): spyne's own
  misread negative half-hour offsets.
"""

# spyne on Python 3.12+ needs this first (syncadmin/lib/spyne_compat.py); the settings import it
# too, so scripts that import spyne after setting Django up work as well.
import syncadmin.lib.spyne_compat  # noqa: F401
from terminals.soap.contract import (
    AUTH_FAILED,
    BATCH_TOO_LARGE,
    FORBIDDEN_XML,
    INVALID_REQUEST,
    NS,
    TERMINAL_DISABLED,
    UNAVAILABLE,
    WSSE_NS,
)
from terminals.soap.guard import ClipRecords, GuardedSoap11, has_doctype_in_prolog
from terminals.soap.service import TerminalSyncService, application
from terminals.soap.view import terminal_soap_view

__all__ = [
    "AUTH_FAILED",
    "BATCH_TOO_LARGE",
    "FORBIDDEN_XML",
    "INVALID_REQUEST",
    "NS",
    "TERMINAL_DISABLED",
    "UNAVAILABLE",
    "WSSE_NS",
    "ClipRecords",
    "GuardedSoap11",
    "TerminalSyncService",
    "application",
    "has_doctype_in_prolog",
    "terminal_soap_view",
]
