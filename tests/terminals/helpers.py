"""Raw SOAP helpers for the terminal API tests (requests + lxml, no SOAP library in between)."""

from __future__ import annotations

import base64
import http.server
import os
import threading
from datetime import UTC, datetime, timedelta

import requests
from lxml import etree
from zeep.wsse import utils as wsse_utils
from zeep.wsse.username import UsernameToken

from terminals.soap import WSSE_NS

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"


def security_header(code: str, key: str, must_understand: bool = True) -> str:
    mu = ' soap:mustUnderstand="1"' if must_understand else ""
    return (
        f'<wsse:Security{mu} xmlns:wsse="{WSSE_NS}"><wsse:UsernameToken>'
        f"<wsse:Username>{code}</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_TEXT}">{key}</wsse:Password>'
        "</wsse:UsernameToken></wsse:Security>"
    )


def wsu_time(moment: datetime) -> str:
    """An xs:dateTime as WCF writes it: UTC, 7 fraction digits, Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def replay_header(
    code: str,
    key: str,
    *,
    created: str | None = None,
    expires: str | None = None,
    nonce: str | None = None,
    token_created: str | None = None,
) -> str:
    """A WS-Security header with a wsu:Timestamp (Created/Expires) and/or a Nonce + wsu:Created."""
    timestamp = ""
    if created is not None or expires is not None:
        timestamp = f'<u:Timestamp xmlns:u="{WSU_NS}" u:Id="_0">'
        timestamp += f"<u:Created>{created}</u:Created>" if created is not None else ""
        timestamp += f"<u:Expires>{expires}</u:Expires>" if expires is not None else ""
        timestamp += "</u:Timestamp>"
    extra = f'<wsse:Nonce EncodingType="{BASE64}">{nonce}</wsse:Nonce>' if nonce is not None else ""
    extra += f'<u:Created xmlns:u="{WSU_NS}">{token_created}</u:Created>' if token_created is not None else ""
    return (
        security_header(code, key)
        .replace("<wsse:UsernameToken>", timestamp + "<wsse:UsernameToken>")
        .replace("</wsse:UsernameToken>", extra + "</wsse:UsernameToken>")
    )


class FreshUsernameToken(UsernameToken):
    """zeep's UsernameToken (PasswordText) plus, on every call, a wsu:Timestamp and a fresh
    Nonce with its wsu:Created: zeep's own class sends those only with a PasswordDigest, which
    the hub does not accept. ``nonce`` fixes the nonce (to replay it in a test)."""

    def __init__(self, username: str, password: str, nonce: bytes | None = None):
        super().__init__(username, password)
        self.fixed_nonce = nonce

    def apply(self, envelope, headers):
        envelope, headers = super().apply(envelope, headers)
        security = wsse_utils.get_security_header(envelope)
        token = security.find(f"{{{security.nsmap['wsse']}}}UsernameToken")
        now = datetime.now(UTC)
        nonce = base64.b64encode(self.fixed_nonce or os.urandom(16)).decode("ascii")
        token.append(wsse_utils.WSSE.Nonce(nonce, EncodingType=BASE64))
        token.append(wsse_utils.WSU.Created(wsu_time(now)))
        timestamp = wsse_utils.WSU.Timestamp(
            wsse_utils.WSU.Created(wsu_time(now)), wsse_utils.WSU.Expires(wsu_time(now + timedelta(minutes=5)))
        )
        security.insert(0, timestamp)
        return envelope, headers


def envelope(body: str, header: str = "", prolog: str = "") -> str:
    return (
        f'{prolog}<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:t="urn:syncadmin:terminal:v1">'
        f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )


def post_raw(url: str, data: str | bytes, content_type: str = "text/xml; charset=utf-8") -> requests.Response:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return requests.post(url, data=data, headers={"Content-Type": content_type, "SOAPAction": '""'}, timeout=30)


def fault_of(response: requests.Response) -> tuple[str, str]:
    """(faultcode without prefix, faultstring) of a SOAP fault response; asserts it is one."""
    assert response.status_code == 500, response.status_code
    assert response.headers["Content-Type"].startswith("text/xml"), response.headers["Content-Type"]
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, response.text[:500]
    return fault.findtext("faultcode").rpartition(":")[2], fault.findtext("faultstring")


def code_of(exc) -> str:
    return str(exc.code).rpartition(":")[2]


def stock_message(mid: str) -> dict:
    """One valid SyncMessage (as a zeep dict) with the given MessageId."""
    return {
        "MessageId": mid,
        "MessageType": "stock.upsert",
        "EntityKey": "SKU-1",
        "Sequence": 1,
        "CreatedAt": datetime.now(UTC),
        "Payload": "{}",
    }


class FetchListener:
    """A loopback HTTP server that records every GET (serving an entity declaration, as an
    external DTD would): the hub must never call it."""

    def __init__(self, body: bytes = b'<!ENTITY leak "LEAKED">'):
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
