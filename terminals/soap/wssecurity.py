"""The WS-Security header: credentials, and the replay defence when the client sends one.

spyne has no WS-Security, so the ``wsse:Security`` header is read from the raw header elements.
What is read (the contract, shared/terminal-api.md, "Authentication"):

- ``UsernameToken/Username`` and ``Password`` (PasswordText only: a digest never matches);
- when present, ``wsu:Timestamp`` (``Created``, ``Expires``) and the token's ``Nonce`` and
  ``wsu:Created``. A ``Created`` more than 5 minutes from the hub's clock (old or ahead), an
  ``Expires`` in the past, or a nonce this terminal already used within the window is refused.
  Requests without them keep working: WCF basicHttpBinding sends none over TLS.

Dates are read by the same strict xs:dateTime reader as the body (terminals/soap/xsd.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from terminals.soap.contract import PASSWORD_TEXT, WSSE_NS
from terminals.soap.xsd import XsdValueError, parse_datetime

WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
# How far a Created may be from the hub's clock, either way, and how long a nonce is remembered.
REPLAY_WINDOW = timedelta(minutes=5)

_SECURITY = f"{{{WSSE_NS}}}Security"
_TOKEN = f"{{{WSSE_NS}}}UsernameToken"
_USERNAME, _PASSWORD, _NONCE = (f"{{{WSSE_NS}}}{name}" for name in ("Username", "Password", "Nonce"))
_TIMESTAMP, _CREATED, _EXPIRES = (f"{{{WSU_NS}}}{name}" for name in ("Timestamp", "Created", "Expires"))


@dataclass
class SecurityHeader:
    """What a request's ``wsse:Security`` header says (texts as sent; dates not read yet)."""

    username: str | None = None
    password: str | None = None
    nonce: str | None = None
    # (where, text) of every Created: the Timestamp's and the UsernameToken's.
    created: list[tuple[str, str]] = field(default_factory=list)
    expires: str | None = None


def security_header_read(header_elements) -> SecurityHeader:
    """The first ``wsse:Security`` header that carries a UsernameToken (empty if there is none)."""
    for element in header_elements or ():
        if element.tag != _SECURITY:
            continue
        token = element.find(_TOKEN)
        if token is None:
            continue
        out = SecurityHeader(username=(token.findtext(_USERNAME) or "").strip())
        password = token.find(_PASSWORD)
        if password is not None and password.get("Type", PASSWORD_TEXT) == PASSWORD_TEXT:
            out.password = password.text or ""
        nonce = token.find(_NONCE)
        if nonce is not None:
            out.nonce = nonce.text or ""
        timestamp = element.find(_TIMESTAMP)
        if timestamp is not None:
            if (created := timestamp.find(_CREATED)) is not None:
                out.created.append(("wsu:Timestamp/wsu:Created", created.text or ""))
            if (expires := timestamp.find(_EXPIRES)) is not None:
                out.expires = expires.text or ""
        if (created := token.find(_CREATED)) is not None:
            out.created.append(("wsse:UsernameToken/wsu:Created", created.text or ""))
        return out
    return SecurityHeader()


@dataclass
class Freshness:
    """The verdict on a header's dates: a problem (the request is refused), or how long to keep its nonce.

    ``malformed``: the problem is a date that is not an xs:dateTime at all, which the contract
    answers like every other unreadable value ("Dates and times": Client.InvalidRequest), not as
    a stale or replayed header (Client.AuthenticationFailed).
    """

    problem: str | None
    keep_nonce_until: datetime | None = None
    malformed: bool = False


def security_header_freshness(header: SecurityHeader, *, now: datetime) -> Freshness:
    """Whether the header's Created/Expires are acceptable at ``now`` (the hub's clock).

    A nonce is kept until no request carrying it could pass this check any more: 5 minutes
    after its Created (or after now, when the request was early or says nothing).
    """
    if not header.created and header.expires is None and header.nonce is None:
        return Freshness(None)  # the usual request (WCF basicHttpBinding, zeep): nothing to check
    clock = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    latest = now
    for where, text in header.created:
        try:
            created = parse_datetime(text)
        except XsdValueError as exc:
            return Freshness(f"{where}: {exc}", malformed=True)
        if created < now - REPLAY_WINDOW:
            return Freshness(f"{where} {_utc(created)} is more than 5 minutes old (the hub's clock: {clock})")
        if created > now + REPLAY_WINDOW:
            return Freshness(f"{where} {_utc(created)} is more than 5 minutes ahead of the hub's clock ({clock})")
        latest = max(latest, created)
    if header.expires is not None:
        try:
            expires = parse_datetime(header.expires)
        except XsdValueError as exc:
            return Freshness(f"wsu:Timestamp/wsu:Expires: {exc}", malformed=True)
        if expires < now:
            return Freshness(f"wsu:Timestamp/wsu:Expires {_utc(expires)} has passed (the hub's clock: {clock})")
    if header.nonce is not None and not "".join(header.nonce.split()):
        return Freshness("wsse:Nonce is empty")
    return Freshness(None, latest + REPLAY_WINDOW)


def _utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
