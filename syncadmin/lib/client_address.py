"""The client's IP address behind the reverse proxy: one answer for every place that needs it.

django-axes (lockouts and its access logs), the /metrics allow-list and the SOAP gateway's
refusal log lines all ask :func:`client_ip` / :func:`client_ip_from_meta`, so they can never
disagree about who is asking.

The rule, with SYNC_TRUSTED_PROXIES a list of the proxies' IPs/CIDRs:

- A request whose peer (REMOTE_ADDR) is not a trusted proxy comes from REMOTE_ADDR. Its
  X-Forwarded-For is ignored: anyone reaching gunicorn directly could write anything there.
- A request from a trusted proxy comes from the right-most X-Forwarded-For entry that is not
  itself a trusted proxy. Each proxy appends the address it saw, so entries to the right of the
  first untrusted one were written by proxies we trust, and everything to its left (which the
  client may have forged) is never read.
- When every hop is a trusted proxy (a probe from the proxy host), the left-most hop is the client.

python-ipware reads each address (ports, brackets, IPv4-mapped IPv6, invalid entries); its own
``proxy_list`` is not used: it matches proxies by position inside the header and never looks at
REMOTE_ADDR, so it cannot tell whether the header came from our proxy at all. This module imports
no app (it is a shared helper).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import lru_cache

from django.conf import settings
from python_ipware import IpWare

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Hops walked through X-Forwarded-For before giving up on finding the client: a real chain has
# a handful of proxies; a header of thousands of trusted-looking entries is not worth reading.
MAX_PROXY_HOPS = 16

_PEER = IpWare(precedence=("REMOTE_ADDR",))
_HOP = IpWare(precedence=("HTTP_X_FORWARDED_FOR",))


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]):
    # settings.py has already refused an entry that is not an IP or a CIDR.
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def _is_trusted(ip, networks: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def _hop_address(entry: str):
    """One X-Forwarded-For entry as an address (python-ipware: ports, brackets, mapped IPv6), or None."""
    ip, _ = _HOP.get_client_ip({"HTTP_X_FORWARDED_FOR": entry})
    return ip


def client_ip_from_meta(meta: Mapping) -> str | None:
    """The client's address from a WSGI environ / ``request.META`` (None when it has none)."""
    peer, _ = _PEER.get_client_ip(meta)
    if peer is None:
        return None
    networks = _networks(tuple(settings.SYNC_TRUSTED_PROXIES))
    if not _is_trusted(peer, networks):
        return str(peer)
    client = peer
    # The entries are split on commas here, not by python-ipware: it reads double quotes as RFC
    # 7239 quoting, so a client sending an unclosed quote through a proxy that appends would
    # swallow the address the proxy appended after it, and pass for the proxy itself.
    entries = str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")
    for entry in [e for e in reversed(entries) if e.strip()][:MAX_PROXY_HOPS]:
        hop = _hop_address(entry)
        if hop is None:
            break  # not an address, so not written by a proxy we trust: the last trusted hop is all we know
        client = hop
        if not _is_trusted(hop, networks):
            break
    return str(client)


def client_ip(request) -> str | None:
    """The client's address of a Django request (django-axes' AXES_CLIENT_IP_CALLABLE)."""
    return client_ip_from_meta(request.META)
