"""The production recipe in deploy/, read the way systemd and nginx read it, for the stack test.

tests/deploy/test_production_stack.py runs the units' own command lines with their own
environment; what this module may change in deploy/'s files is listed here (and on
docs/operations/production.md, "The recipe, run", which a test keeps in step):

- the install prefix /opt/syncadmin is this checkout, and its .venv/bin the bin directory of
  the Python running the tests;
- /run, /var/lib/syncadmin, /etc/ssl/syncadmin, /etc/nginx and the service user's home are
  folders under the test's temporary directory;
- nginx: the listen ports and the upstream's port are free ports on 127.0.0.1 (and [::1]),
  server_name is 127.0.0.1, the certificate is one made for the test by its own CA;
- the environment file is deploy/.env.example with the values in ``ENV_FILLED`` replaced
  (secrets, paths, URLs, the host name, the monitoring address, the queue's name) and the
  GUNICORN_* lines in ``ENV_ADDED`` appended (the bind port; 2 workers, whatever the machine).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shlex
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.processes import ROOT

DEPLOY = ROOT / "deploy"
WEB_UNIT = DEPLOY / "systemd" / "syncadmin-web.service"
WORKER_UNIT = DEPLOY / "systemd" / "syncadmin-worker@.service"
# The alert rules evaluated outside the workers, once a minute (docs/operations/alerts.md).
ALERT_UNITS = (DEPLOY / "systemd" / "syncadmin-alerts.service", DEPLOY / "systemd" / "syncadmin-alerts.timer")
NGINX_SITE = DEPLOY / "nginx" / "syncadmin.conf"
PROXY_PARAMS = DEPLOY / "nginx" / "syncadmin_proxy_params"
ENV_EXAMPLE = DEPLOY / ".env.example"
PREFIX = "/opt/syncadmin"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
NGINX = "/usr/sbin/nginx"
HOST = "127.0.0.1"  # server_name, ALLOWED_HOSTS and the clients' URL (and the certificate's address)

# The environment file's values the test fills in; every other line of .env.example is kept.
ENV_FILLED = (
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    "SYNC_VAR_DIR",
    "DATABASE_URL",
    "Q_BROKER",
    "Q_CLUSTER_NAME",
    "SYNC_METRICS_TOKEN",
    "SYNC_METRICS_ALLOWED_IPS",
)
ENV_ADDED = ("GUNICORN_BIND", "GUNICORN_WORKERS")


# --- systemd ----------------------------------------------------------------------------------------


def unit_service(path: Path) -> dict[str, list[str]]:
    """The [Service] section of a unit file: each key's values, in order (systemd's syntax: comments
    start with # or ;, a key may repeat)."""
    section, values = "", {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def local_path(path: str, tmp: Path) -> str:
    """A path of the recipe on this machine: the install prefix is this checkout, the venv's bin
    the running Python's, system folders go under ``tmp``."""
    if path.startswith(f"{PREFIX}/.venv/bin/"):
        return str(Path(sys.executable).parent / path.rsplit("/", 1)[1])
    if path == PREFIX or path.startswith(PREFIX + "/"):
        return str(ROOT) + path[len(PREFIX) :]
    for system in ("/run/", "/var/lib/", "/etc/"):
        if path.startswith(system):
            return str(tmp / system.strip("/").replace("/", "-")) + "/" + path[len(system) :]
    return path


def exec_start(unit: dict[str, list[str]], tmp: Path) -> tuple[list[str], str]:
    """(argv, working directory) of the unit's ExecStart=, with only the paths made local."""
    (command,) = unit["ExecStart"]
    argv = shlex.split(command)
    return [local_path(argv[0], tmp), *argv[1:]], local_path(unit["WorkingDirectory"][0], tmp)


def environment_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= reads them (no quotes are used in ours)."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and line[0] not in "#;":
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def unit_environment(unit: dict[str, list[str]], name: str, env_file: Path, tmp: Path) -> dict[str, str]:
    """The process environment systemd gives the unit ``name``: its own variables (PATH, HOME,
    RUNTIME_DIRECTORY for RuntimeDirectory=, STATE_DIRECTORY), then EnvironmentFile=, then
    Environment=. Nothing of the test's own environment leaks in."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "USER": "syncadmin",
        "LOGNAME": "syncadmin",
    }
    for key, base, variable in (
        ("RuntimeDirectory", "/run/", "RUNTIME_DIRECTORY"),
        ("StateDirectory", "/var/lib/", "STATE_DIRECTORY"),
    ):
        if key in unit:
            directory = Path(local_path(base + unit[key][0].replace("%N", name), tmp))
            directory.mkdir(parents=True, exist_ok=True)  # systemd creates it, empty, at each start
            env[variable] = str(directory)
    (configured,) = unit["EnvironmentFile"]
    assert configured == "/etc/syncadmin/syncadmin.env", configured  # what the docs tell operators to write
    env.update(environment_file(env_file))
    for assignment in unit.get("Environment", []):
        for item in shlex.split(assignment):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def systemd_verify(tmp: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze verify`` on the units, copied with their paths made local (it checks that
    ExecStart's program exists)."""
    folder = tmp / "units"
    folder.mkdir(exist_ok=True)
    copies = []
    for unit in (WEB_UNIT, WORKER_UNIT, *ALERT_UNITS):
        text = unit.read_text().replace(f"{PREFIX}/.venv/bin/", f"{Path(sys.executable).parent}/")
        copy = folder / unit.name
        copy.write_text(text.replace(PREFIX, str(ROOT)))
        copies.append(str(copy))
    return subprocess.run([SYSTEMD_ANALYZE, "verify", *copies], capture_output=True, text=True, timeout=60)


# --- the environment file -----------------------------------------------------------------------------


def env_file_text(filled: dict[str, str], added: dict[str, str]) -> str:
    """deploy/.env.example with the ``ENV_FILLED`` values replaced and the ``ENV_ADDED`` lines appended."""
    assert set(filled) == set(ENV_FILLED) and set(added) == set(ENV_ADDED)
    lines, seen = [], set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        key = line.partition("=")[0].strip()
        if line.strip() and not line.lstrip().startswith("#") and key in filled:
            line, _ = f"{key}={filled[key]}", seen.add(key)
        lines.append(line)
    assert seen == set(ENV_FILLED), f"not in deploy/.env.example: {set(ENV_FILLED) - seen}"
    return "\n".join([*lines, *(f"{k}={v}" for k, v in added.items())]) + "\n"


# --- TLS ----------------------------------------------------------------------------------------------


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server chain, server key) for 127.0.0.1 and localhost, signed by a CA made here."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SyncAdmin test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # Key identifiers: Python 3.13's default TLS context verifies with VERIFY_X509_STRICT, which
        # refuses a chain without them (as a public CA's chain always has them).
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "fullchain.pem", folder / "privkey.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(server.public_bytes(pem) + ca.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


# --- nginx ----------------------------------------------------------------------------------------------


def ipv6_loopback() -> bool:
    """Whether ::1 exists here (a container may have no IPv6 at all)."""
    try:
        return any(line.split()[0] == "0" * 31 + "1" for line in Path("/proc/net/if_inet6").read_text().splitlines())
    except OSError:
        return False


def nginx_site(*, http: int, https: int, upstream: int, chain: Path, key: Path) -> str:
    """deploy/nginx/syncadmin.conf with only its ports, addresses, server_name and paths substituted.

    Each substitution must find its text exactly once: a changed recipe fails here, loudly,
    instead of being tested half. Without IPv6 loopback, the [::] listen lines are dropped."""
    v6 = ipv6_loopback()
    substitutions = [
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("listen [::]:80;", f"listen [::1]:{http};" if v6 else "# (no IPv6 loopback here)"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;"),
        ("listen [::]:443 ssl http2;", f"listen [::1]:{https} ssl http2;" if v6 else "# (no IPv6 loopback here)"),
        ("server 127.0.0.1:8000 ", f"server 127.0.0.1:{upstream} "),
        ("ssl_certificate     /etc/ssl/syncadmin/fullchain.pem;", f"ssl_certificate     {chain};"),
        ("ssl_certificate_key /etc/ssl/syncadmin/privkey.pem;", f"ssl_certificate_key {key};"),
    ]
    text = NGINX_SITE.read_text()
    for old, new in substitutions:
        assert text.count(old) == 1, f"deploy/nginx/syncadmin.conf: expected {old!r} once"
        text = text.replace(old, new)
    for old, new in (("server_name hub.example.com;", f"server_name {HOST};"),
                     ("include /etc/nginx/syncadmin_proxy_params;", f"include {PROXY_PARAMS};")):  # fmt: skip
        assert text.count(old) >= 1, f"deploy/nginx/syncadmin.conf: expected {old!r}"
        text = text.replace(old, new)
    return text


def nginx_main(prefix: Path, site: Path) -> str:
    """The main nginx.conf standing for Debian's /etc/nginx/nginx.conf (which includes the site from
    sites-enabled inside http {}): in the foreground, its pid, logs and temp files under ``prefix``."""
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must reach the temp dirs
    temp = "\n".join(
        f"    {name}_temp_path {prefix / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix / "access.log"};
{temp}
    include {site};
}}
"""
