"""The client address behind trusted proxies (syncadmin/lib/client_address.py)."""

import ipaddress
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from syncadmin.lib.client_address import client_ip_from_meta

TRUSTED = ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]


@pytest.fixture
def proxies(settings):
    settings.SYNC_TRUSTED_PROXIES = TRUSTED


def meta(peer: str, forwarded: str | None = None) -> dict:
    return {"REMOTE_ADDR": peer} | ({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {})


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # not from a trusted proxy: the header is whatever the client wants, never read
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        ("203.0.113.9", None, "203.0.113.9"),
        # from nginx on the node (which sets the header): the address it saw
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1"),
        # an appending proxy: what the client sent is left of what the proxy saw, never read
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "10.0.0.1, 198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "junk, 198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", '", 198.51.100.1', "198.51.100.1"),  # an unclosed quote swallows nothing
        ("127.0.0.1", 'for="6.6.6.6, 198.51.100.1', "198.51.100.1"),
        # a chain: load balancer 10.1.1.1 appended the client, then nginx the load balancer
        ("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.1.1", "198.51.100.1"),
        ("127.0.0.1", "[2001:db8::7]:443, fd00::2", "2001:db8::7"),
        ("127.0.0.1", "198.51.100.1:5123", "198.51.100.1"),
        # every hop a trusted proxy (a probe on the proxy host): the left-most hop
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "10.0.0.5", "10.0.0.5"),
        # an entry no proxy of ours writes: the last trusted hop is all that is known
        ("127.0.0.1", "198.51.100.1, nonsense", "127.0.0.1"),
    ],
)
def test_client_address(proxies, peer, forwarded, client):
    assert client_ip_from_meta(meta(peer, forwarded)) == client


def test_without_trusted_proxies_the_header_is_never_read(settings):
    settings.SYNC_TRUSTED_PROXIES = []
    assert client_ip_from_meta(meta("127.0.0.1", "198.51.100.1")) == "127.0.0.1"
    assert client_ip_from_meta({}) is None


# Addresses a real TCP peer can have, written as python-ipware writes them back (it reads
# IPv4-mapped and NAT64 addresses as the IPv4 inside them).
NEVER_A_SOURCE = [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "64:ff9b::/96")]
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).filter(
    lambda ip: (
        not (
            ip.is_unspecified
            or ip.is_multicast
            or ip.is_reserved
            or getattr(ip, "ipv4_mapped", None)
            or any(ip.version == n.version and ip in n for n in NEVER_A_SOURCE)
        )
    )
)
header_text = st.text(alphabet=st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=80)


def _untrusted(ip) -> bool:
    return not any(ip.version == n.version and ip in n for n in map(ipaddress.ip_network, TRUSTED))


@given(peer=addresses.filter(_untrusted), forged=header_text)
@hypothesis_settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_client_reaching_the_app_directly_cannot_choose_its_address(proxies, peer, forged):
    assert client_ip_from_meta(meta(str(peer), forged)) == str(peer)


@given(
    client=addresses.filter(_untrusted),
    forged=header_text,
    hops=st.lists(st.sampled_from(["10.0.0.9", "10.200.3.4", "fd00::1", "127.0.0.1"]), max_size=4),
)
@hypothesis_settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_through_trusted_proxies_the_client_is_what_the_first_proxy_saw(proxies, client, forged, hops):
    """Whatever the client put in front (appending proxies keep it), the address the first proxy
    appended is the answer; the trusted hops after it are skipped."""
    header = ", ".join([forged, str(client), *hops])
    assert client_ip_from_meta(meta("127.0.0.1", header)) == str(client)


def test_an_invalid_trusted_proxy_refuses_to_start(tmp_path):
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "SYNC_TRUSTED_PROXIES": "127.0.0.1,nginx.local", "SYNC_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "SYNC_TRUSTED_PROXIES" in proc.stderr and "nginx.local" in proc.stderr
