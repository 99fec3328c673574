"""Raw SOAP helpers for the terminal API tests (requests + lxml, no SOAP library in between)."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime

import requests
from lxml import etree

from terminals.soap import WSSE_NS

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"


def security_header(code: str, key: str, must_understand: bool = True) -> str:
    mu = ' soap:mustUnderstand="1"' if must_understand else ""
    return (
        f'<wsse:Security{mu} xmlns:wsse="{WSSE_NS}"><wsse:UsernameToken>'
        f"<wsse:Username>{code}</wsse:Username>"
        f'<wsse:Password Type="{PASSWORD_TEXT}">{key}</wsse:Password>'
        "</wsse:UsernameToken></wsse:Security>"
    )


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
