"""Through a real nginx in front of gunicorn: the client address behind the documented proxy.

nginx (Debian's, /usr/sbin/nginx) runs from a config made here that includes the shipped
deploy/nginx/syncadmin_proxy_params; gunicorn runs with deploy/gunicorn.conf.py and
SYNC_TRUSTED_PROXIES=127.0.0.1. Every 127.x.y.z address is local on Linux, so each simulated
client binds its socket to its own loopback address and nginx sees several real client IPs.

Shown: failures from one address never lock an account for another; a spray over many usernames
locks the address; a client cannot choose its address with its own X-Forwarded-For, through nginx
or straight to gunicorn; the /metrics allow-list sees the real client through the proxy.

The hub runs on its own SQLite file (the test is about the proxy path, not the database), so it
runs in both passes of `make test`. Outside CI it is skipped when nginx is missing; in CI (.ci/run
installs nginx) a missing nginx fails it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests.deploy import recipe
from tests.processes import ROOT, free_port, start_gunicorn, stop, wait_until

NGINX = "/usr/sbin/nginx"
PARAMS = ROOT / "deploy" / "nginx" / "syncadmin_proxy_params"
PASSWORD = "correct horse battery staple"
PAIR_LIMIT = 5  # AXES_FAILURE_LIMIT's default
IP_LIMIT = 8  # SYNC_LOGIN_IP_FAILURE_LIMIT, lowered from 20: every failure costs a password hash

pytestmark = pytest.mark.skipif(
    not os.path.exists(NGINX) and not os.environ.get("CI"), reason="Debian's nginx is not installed"
)


class SourceAddressAdapter(HTTPAdapter):
    """Connections from a chosen local address: a distinct client as far as nginx can tell."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """One client at one loopback address, talking to ``base`` (nginx, or gunicorn directly)."""

    def __init__(self, base: str, source: str, headers: dict | None = None):
        self.base, self.source = base, source
        self.session = requests.Session()
        self.session.mount("http://", SourceAddressAdapter(source))
        self.session.headers.update(headers or {})

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, allow_redirects=False, **kwargs)

    def login(self, username: str, password: str) -> int:
        """The status of a login POST: 302 in, 200 a wrong password, 429 locked out."""
        self.session.cookies.clear()
        page = self.get("/accounts/login/")
        assert page.status_code == 200, page.text[:500]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = self.session.post(
            self.base + "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            timeout=30,
            allow_redirects=False,
        )
        return response.status_code


def nginx_config(prefix: Path, port: int, upstream: int) -> str:
    """The main config (recipe.nginx_main) with one plain-HTTP site proxying to gunicorn."""
    site = prefix / "site.conf"
    site.write_text(
        f"""server {{
    listen 127.0.0.1:{port};
    server_name 127.0.0.1;
    location / {{
        proxy_pass http://127.0.0.1:{upstream};
        include {PARAMS};
    }}
}}
"""
    )
    return recipe.nginx_main(prefix, site)


def listening(url: str) -> bool:
    try:
        return requests.get(url + "/accounts/login/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(nginx URL, gunicorn URL) of a hub behind nginx, with a user ``admin``."""
    if not os.path.exists(NGINX):
        pytest.fail(f"{NGINX} is missing: .ci/run installs Debian's nginx package (apt-get install nginx)")
    tmp = tmp_path_factory.mktemp("proxy")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))},
        "DATABASE_URL": f"sqlite:///{tmp / 'hub.sqlite3'}",
        "Q_BROKER": "orm",
        "SYNC_VAR_DIR": str(tmp),
        "LOG_LEVEL": "WARNING",
        "SYNC_TRUSTED_PROXIES": "127.0.0.1",
        "SYNC_METRICS_ALLOWED_IPS": "127.0.0.2/32",
        "SYNC_METRICS_TOKEN": "",
        "AXES_FAILURE_LIMIT": str(PAIR_LIMIT),
        "SYNC_LOGIN_IP_FAILURE_LIMIT": str(IP_LIMIT),
        "GUNICORN_WORKERS": "2",  # lockouts live in the database: every worker sees them
        "GUNICORN_THREADS": "2",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run(
        [*manage, "createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"],
        cwd=ROOT,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
    )
    app_port, proxy_port = free_port(), free_port()
    (tmp / "nginx.conf").write_text(nginx_config(tmp, proxy_port, app_port))
    web_log = open(tmp / "gunicorn.log", "w")
    web = start_gunicorn(env, web_log, app_port)
    proxy = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    app, edge = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{proxy_port}"
    try:
        assert wait_until(lambda: listening(app), 60), (tmp / "gunicorn.log").read_text()[-2000:]
        assert wait_until(lambda: listening(edge), 20), (tmp / "error.log").read_text()[-2000:]
        yield edge, app
    finally:
        stop(proxy, timeout=10)
        stop(web, timeout=30)
        web_log.close()


def test_failures_from_one_address_lock_that_address_out_of_the_account_only(hub):
    edge, _ = hub
    attacker, colleague = Browser(edge, "127.0.0.2"), Browser(edge, "127.0.0.3")
    assert [attacker.login("admin", "wrong") for _ in range(PAIR_LIMIT - 1)] == [200] * (PAIR_LIMIT - 1)
    assert attacker.login("admin", "wrong") == 429  # the failure that reaches the limit is answered locked
    assert attacker.login("admin", PASSWORD) == 429  # (admin, 127.0.0.2) is locked, even the right password
    assert colleague.login("admin", PASSWORD) == 302  # admin from elsewhere is not
    assert attacker.login("admin", PASSWORD) == 429  # and that success cleared nothing of 127.0.0.2's


def test_a_password_spray_from_one_address_locks_that_address(hub):
    edge, _ = hub
    sprayer = Browser(edge, "127.0.0.4")
    answers = [sprayer.login(f"user{i}", "Summer2026!") for i in range(IP_LIMIT)]
    assert answers == [200] * (IP_LIMIT - 1) + [429], answers  # no username failed more than once
    assert sprayer.login("admin", PASSWORD) == 429  # every login from the address, even a right one
    assert Browser(edge, "127.0.0.5").login("admin", PASSWORD) == 302  # other addresses are not touched


def test_a_forged_x_forwarded_for_through_nginx_does_not_choose_the_address(hub):
    edge, _ = hub
    forger = Browser(edge, "127.0.0.6", headers={"X-Forwarded-For": "127.0.0.7"})
    for _ in range(PAIR_LIMIT):
        forger.login("admin", "wrong")
    assert Browser(edge, "127.0.0.7").login("admin", PASSWORD) == 302  # the forged address was not locked
    assert Browser(edge, "127.0.0.6").login("admin", PASSWORD) == 429  # the real one was
    assert Browser(edge, "127.0.0.6", headers={"X-Forwarded-For": "127.0.0.9"}).login("admin", PASSWORD) == 429


def test_x_forwarded_for_sent_straight_to_gunicorn_is_not_trusted(hub):
    edge, app = hub
    direct = Browser(app, "127.0.0.8", headers={"X-Forwarded-For": "127.0.0.10"})
    for _ in range(PAIR_LIMIT):
        direct.login("admin", "wrong")
    assert Browser(edge, "127.0.0.10").login("admin", PASSWORD) == 302
    assert Browser(app, "127.0.0.8").login("admin", PASSWORD) == 429
    # nor does it open /metrics: the allow-list is 127.0.0.2 only
    assert Browser(app, "127.0.0.8", headers={"X-Forwarded-For": "127.0.0.2"}).get("/metrics").status_code == 403


def test_metrics_allow_list_sees_the_client_through_nginx(hub):
    edge, _ = hub
    allowed = Browser(edge, "127.0.0.2").get("/metrics")
    assert allowed.status_code == 200 and "syncadmin_" in allowed.text
    assert Browser(edge, "127.0.0.3").get("/metrics").status_code == 403
    # a client cannot name an allowed address through the proxy either
    assert Browser(edge, "127.0.0.3", headers={"X-Forwarded-For": "127.0.0.2"}).get("/metrics").status_code == 403
