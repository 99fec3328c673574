"""The production recipe, run: nginx (TLS) in front of the web unit, and the worker unit, as deploy/ ships them.

What runs (docs/operations/production.md, "The recipe, run"): Debian's nginx with
deploy/nginx/syncadmin.conf (only ports, server_name, certificate and include paths
substituted: tests/deploy/recipe.py) terminating TLS with a certificate from a CA made here;
gunicorn started with the exact ExecStart= of deploy/systemd/syncadmin-web.service and a
worker cluster with the exact ExecStart= of syncadmin-worker@.service, both with the
environment systemd would give them (their EnvironmentFile=: deploy/.env.example with only
secrets, paths, URLs and addresses filled; Environment=; RUNTIME_DIRECTORY), on a PostgreSQL
database of their own and Redis. First the install steps of the page: migrate, collectstatic,
createsuperuser, create_terminal.

Through that stack: the console logs in over HTTPS with Secure + HttpOnly cookies and HSTS;
zeep reads the WSDL and submits over HTTPS (verifying the CA) and the workers process every
message; static files have hashed names and a year of immutable caching; /metrics sums the
SOAP counts of every gunicorn worker; each web unit has its own control socket; the web unit
writes JSON lines only, its access log included; check --deploy is clean with that env file.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg import sql
from zeep import Client, Settings
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from tests.deploy import recipe
from tests.processes import ROOT, check_deploy, free_port, postgres_url, stop, wait_until

PASSWORD = "correct horse battery staple"
TERMINAL = "STACK-1"
HOST = recipe.HOST
SOAP_PATH = "/soap/terminal/v1/"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.path.exists(recipe.NGINX) and not os.environ.get("CI"), reason="Debian's nginx is not installed"
    ),
]


@dataclass
class Stack:
    tmp: Path
    base: str  # https://127.0.0.1:<port> (nginx)
    http: str  # http://127.0.0.1:<port> (nginx, plain: redirects)
    ca: Path
    env_file: Path
    web_env: dict
    worker_env: dict
    web_log: Path
    worker_log: Path
    database: str  # the stack's own database URL
    metrics_token: str
    terminal_key: str

    def session(self) -> requests.Session:
        session = requests.Session()
        session.verify = str(self.ca)  # the test's CA: never verify=False
        # Or REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, when set, would replace that CA on every request
        # (requests lets the environment win over a session's verify), and a proxy could be used.
        session.trust_env = False
        return session

    def web_lines(self) -> list[str]:
        return [line for line in self.web_log.read_text().splitlines() if line.strip()]

    def messages_by_state(self) -> dict[str, int]:
        with psycopg.connect(self.database) as conn:
            # Every envelope, with its state row's state (None: an envelope without one, never right).
            rows = conn.execute(
                "SELECT s.state, count(*) FROM queue_messages_message m"
                " LEFT JOIN queue_messages_messagestate s ON s.id = m.id GROUP BY s.state"
            ).fetchall()
        return dict(rows)


def manage(env: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, **kwargs
    )


def start(argv: list[str], cwd: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def answering(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url, timeout=5, allow_redirects=False).status_code == 200
    except requests.RequestException:
        return False


def own_database(cleanup: ExitStack) -> str:
    """A database of the stack's own on the test run's PostgreSQL server, dropped at the end: the
    install steps migrate it as an operator would."""
    server = postgres_url("")
    name = re.sub(r"^test_", "", postgres_url().rsplit("/", 1)[1]) + "_stack"

    def run(statement: str) -> None:
        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    run("DROP DATABASE IF EXISTS {} WITH (FORCE)")
    run("CREATE DATABASE {}")
    cleanup.callback(run, "DROP DATABASE IF EXISTS {} WITH (FORCE)")
    return f"{server}/{name}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not os.path.exists(recipe.NGINX):
        pytest.fail(f"{recipe.NGINX} is missing: .ci/run installs Debian's nginx package")
    tmp = tmp_path_factory.mktemp("stack")
    https, http, web_port = free_port(), free_port(), free_port()
    ca, chain, key = recipe.certificates(Path(recipe.local_path("/etc/ssl/syncadmin", tmp)))
    token = secrets.token_urlsafe(32)
    broker = os.environ.get("Q_BROKER", "")
    with ExitStack() as cleanup:
        database = own_database(cleanup)
        env_file = Path(recipe.local_path("/etc/syncadmin/syncadmin.env", tmp))
        env_file.parent.mkdir(parents=True)
        filled = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": HOST,
            "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://{HOST}:{https}",
            "SYNC_VAR_DIR": recipe.local_path("/var/lib/syncadmin", tmp),
            "DATABASE_URL": database,
            "Q_BROKER": os.environ.get("TEST_REDIS_URL")
            or (broker if broker.startswith("redis") else "redis://127.0.0.1:6379/15"),
            "Q_CLUSTER_NAME": f"stack-{uuid.uuid4().hex[:8]}",  # a queue of its own on a shared Redis
            "SYNC_METRICS_TOKEN": token,
            "SYNC_METRICS_ALLOWED_IPS": "127.0.0.1,::1",  # the monitoring network is this machine
        }
        added = {"GUNICORN_BIND": f"127.0.0.1:{web_port}", "GUNICORN_WORKERS": "2"}
        env_file.write_text(recipe.env_file_text(filled, added))
        env_file.chmod(0o640)
        web_unit, worker_unit = recipe.unit_service(recipe.WEB_UNIT), recipe.unit_service(recipe.WORKER_UNIT)
        web_env = recipe.unit_environment(web_unit, "syncadmin-web", env_file, tmp)
        worker_env = recipe.unit_environment(worker_unit, "syncadmin-worker@1", env_file, tmp)

        # The install steps (docs/operations/production.md, "First install").
        for step in (
            ["migrate", "--noinput"],
            ["collectstatic", "--noinput"],
            ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"],
        ):
            done = manage({**worker_env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}, *step)
            assert done.returncode == 0, (step, done.stdout[-2000:], done.stderr[-3000:])
        created = manage(worker_env, "create_terminal", TERMINAL, "--name", "Stack till")
        assert created.returncode == 0, created.stderr[-3000:]
        terminal_key = re.search(r"^api_key=(\S+)$", created.stdout, re.M).group(1)

        web_argv, web_cwd = recipe.exec_start(web_unit, tmp)
        worker_argv, worker_cwd = recipe.exec_start(worker_unit, tmp)
        web = start(web_argv, web_cwd, web_env, tmp / "web.log")
        cleanup.callback(stop, web, timeout=40)  # TimeoutStopSec of the web unit
        worker = start(worker_argv, worker_cwd, worker_env, tmp / "worker.log")
        cleanup.callback(stop, worker, timeout=75)  # TimeoutStopSec of the worker unit

        prefix = tmp / "nginx"
        prefix.mkdir()
        site = prefix / "syncadmin.conf"
        site.write_text(recipe.nginx_site(http=http, https=https, upstream=web_port, chain=chain, key=key))
        (prefix / "nginx.conf").write_text(recipe.nginx_main(prefix, site))
        nginx = [recipe.NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
        checked = subprocess.run([*nginx, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        proxy = start(nginx, str(prefix), {"PATH": "/usr/sbin:/usr/bin"}, prefix / "stdout.log")
        cleanup.callback(stop, proxy, timeout=10)

        built = Stack(
            tmp=tmp,
            base=f"https://{HOST}:{https}",
            http=f"http://{HOST}:{http}",
            ca=ca,
            env_file=env_file,
            web_env=web_env,
            worker_env=worker_env,
            web_log=tmp / "web.log",
            worker_log=tmp / "worker.log",
            database=database,
            metrics_token=token,
            terminal_key=terminal_key,
        )
        session = built.session()
        assert wait_until(lambda: answering(session, built.base + "/accounts/login/"), 90), (
            tmp / "web.log"
        ).read_text()[-3000:] + (prefix / "error.log").read_text()[-2000:]
        yield built


def set_cookies(response: requests.Response) -> dict[str, set[str]]:
    """Each Set-Cookie of a response: its name and its attributes (lower case, values dropped)."""
    found = {}
    for header in response.raw.headers.getlist("Set-Cookie"):
        name, *attributes = [part.strip() for part in header.split(";")]
        found[name.split("=", 1)[0]] = {a.split("=", 1)[0].lower() for a in attributes}
    return found


def test_check_deploy_has_zero_warnings_with_the_units_environment(stack):
    result = check_deploy(stack.worker_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", result.stdout + result.stderr


def test_the_console_logs_in_over_https_with_secure_cookies(stack):
    plain = stack.session().get(stack.http + "/accounts/login/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"] == f"https://{HOST}/accounts/login/"

    browser = stack.session()
    page = browser.get(stack.base + "/accounts/login/", timeout=10)
    assert page.status_code == 200 and page.url.startswith("https://")
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert {"secure", "httponly"} <= set_cookies(page)["csrftoken"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    login = browser.post(
        stack.base + "/accounts/login/",
        data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": stack.base + "/accounts/login/", "Origin": stack.base},
        allow_redirects=False,
        timeout=30,
    )
    assert login.status_code == 302, login.text[:500]
    assert {"secure", "httponly"} <= set_cookies(login)["sessionid"]
    dashboard = browser.get(stack.base + "/", allow_redirects=False, timeout=10)
    assert dashboard.status_code == 200 and "Strict-Transport-Security" in dashboard.headers


def soap_client(stack: Stack) -> Client:
    """zeep over HTTPS, verifying the test's CA. The WSDL names the service at https://127.0.0.1/...
    (nginx passes $host, without a port: right on 443), so the client is pointed at the test's port."""
    client = Client(
        stack.base + SOAP_PATH + "?wsdl",
        wsse=UsernameToken(TERMINAL, stack.terminal_key),
        transport=Transport(session=stack.session()),
        settings=Settings(strict=True),
    )
    binding = next(iter(next(iter(client.wsdl.services.values())).ports.values())).binding
    assert client.service._binding_options["address"] == f"https://{HOST}{SOAP_PATH}"
    return client.create_service(binding.name, stack.base + SOAP_PATH)


def test_zeep_submits_over_https_and_the_worker_unit_processes_every_message(stack):
    service = soap_client(stack)
    made = datetime.now(UTC)
    batch = [
        {
            "MessageId": f"stack-{i}",
            "MessageType": "product.upsert",
            "EntityKey": f"SKU-{i}",
            "Sequence": 1,
            "CreatedAt": made,
            "Payload": json.dumps({"name": f"item {i}"}),
        }
        for i in range(25)
    ]
    results = service.SubmitMessages(messages={"SyncMessage": batch})
    assert [r.Status for r in results] == ["Accepted"] * 25
    assert wait_until(lambda: stack.messages_by_state() == {"Processed": 25}, 60), (
        stack.messages_by_state(),
        stack.worker_log.read_text()[-3000:],
    )


def test_static_files_have_hashed_names_and_a_year_of_immutable_caching(stack):
    page = stack.session().get(stack.base + "/accounts/login/", timeout=10).text
    hashed = re.findall(r'(?:href|src)="(/static/[^"]+\.[0-9a-f]{12}\.(?:css|js))"', page)
    assert hashed, page[:1500]  # {% static %} wrote the manifest's names
    for path in hashed:
        asset = stack.session().get(stack.base + path, timeout=10)
        assert asset.status_code == 200, path
        control = asset.headers["Cache-Control"]
        assert "immutable" in control and int(re.search(r"max-age=(\d+)", control).group(1)) >= 365 * 24 * 3600


def soap_access_pids(stack: Stack) -> list[int]:
    """The gunicorn worker pid of every SOAP POST, from the web unit's JSON access log."""
    pids = []
    for line in stack.web_lines():
        entry = json.loads(line)
        if entry["logger"] == "gunicorn.access" and entry["method"] == "POST" and entry["path"] == SOAP_PATH:
            pids.append(entry["pid"])
    return pids


def soap_requests_counted(stack: Stack) -> int:
    text = stack.session().get(
        stack.base + "/metrics", headers={"Authorization": f"Bearer {stack.metrics_token}"}, timeout=10
    )
    assert text.status_code == 200, text.text[:300]
    return int(sum(float(v) for v in re.findall(r"^syncadmin_soap_requests_total\{[^}]*\} (\S+)$", text.text, re.M)))


def test_metrics_add_up_the_soap_requests_of_every_gunicorn_worker(stack):
    service = soap_client(stack)

    def beat():
        for _ in range(5):
            service.Heartbeat(info={"AppVersion": "1.0", "LocalBacklog": 0})

    for _ in range(10):  # concurrent calls open several connections; the workers share them out
        threads = [threading.Thread(target=beat) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        if wait_until(lambda: len(set(soap_access_pids(stack))) >= 2, 5):
            break
    pids = soap_access_pids(stack)
    per_worker = {pid: pids.count(pid) for pid in set(pids)}
    assert len(per_worker) >= 2, per_worker
    # Every worker's count is in the sum /metrics answers, whichever worker answers it.
    assert wait_until(lambda: soap_requests_counted(stack) == len(soap_access_pids(stack)), 10), (
        soap_requests_counted(stack),
        per_worker,
    )
    assert max(per_worker.values()) < len(pids)


def get_over(address: str, stack: Stack, path: str, headers: dict) -> tuple[int, str, str]:
    """GET ``path`` from nginx's https listener on ``address`` (::1 or 127.0.0.1), the URL's host and
    the certificate check staying the stack's (as a scraper given "localhost" that resolved to ::1):
    (status, Server header, body)."""
    port = int(stack.base.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(stack.ca))

    class Connection(http.client.HTTPSConnection):
        def connect(self):
            raw = socket.create_connection((address, port), timeout=10)
            self.sock = context.wrap_socket(raw, server_hostname=HOST)

    conn = Connection(HOST, port, context=context, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Server", ""), response.read().decode(errors="replace")
    finally:
        conn.close()


def test_metrics_answer_a_scraper_on_this_host_over_ipv4_and_ipv6_loopback(stack):
    auth = {"Authorization": f"Bearer {stack.metrics_token}"}
    addresses = ["127.0.0.1", "::1"] if recipe.ipv6_loopback() else ["127.0.0.1"]
    for address in addresses:
        status, server, body = get_over(address, stack, "/metrics", auth)
        answered = (status, "# TYPE syncadmin_backlog_messages gauge" in body)
        assert answered == (200, True), (address, status, server, body[:300])


def test_each_unit_writes_json_lines_only_the_access_log_included(stack):
    stack.session().get(stack.base + "/accounts/login/?from=log-test", timeout=10)
    assert wait_until(lambda: "from=log-test" in stack.web_log.read_text(), 10)
    entries = [json.loads(line) for line in stack.web_lines()]  # every line, or this fails
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    access = next(e for e in entries if e["logger"] == "gunicorn.access" and e.get("query") == "from=log-test")
    assert (access["method"], access["path"], access["status"], access["level"]) == (
        "GET",
        "/accounts/login/",
        200,
        "INFO",
    )
    assert access["remote_addr"] == "127.0.0.1" and access["forwarded_for"] == "127.0.0.1"
    assert isinstance(access["duration_ms"], int) and isinstance(access["pid"], int)
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in entries)
    # The worker unit too: the application's lines and django-q2's, one JSON object each.
    worker = [json.loads(line) for line in stack.worker_log.read_text().splitlines() if line.strip()]
    assert any(e["logger"] == "django-q" for e in worker) and all("message" in e for e in worker)


def gunicornc(socket: Path, command: str) -> dict:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gunicornc"), "-s", str(socket), "-j", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_each_web_unit_has_its_own_control_socket(stack):
    first = Path(stack.web_env["RUNTIME_DIRECTORY"]) / "gunicorn.ctl"
    assert first.is_socket()
    # A second web unit on the same host (a copy of the unit named syncadmin-web-2, its own bind).
    port = free_port()
    unit = recipe.unit_service(recipe.WEB_UNIT)
    env = {
        **recipe.unit_environment(unit, "syncadmin-web-2", stack.env_file, stack.tmp),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
    }
    second = Path(env["RUNTIME_DIRECTORY"]) / "gunicorn.ctl"
    assert second != first
    argv, cwd = recipe.exec_start(unit, stack.tmp)
    other = start(argv, cwd, env, stack.tmp / "web-2.log")
    try:
        assert wait_until(second.is_socket, 60), (stack.tmp / "web-2.log").read_text()[-3000:]
        assert f"127.0.0.1:{port}" in json.dumps(gunicornc(second, "show listeners"))
        listeners = json.dumps(gunicornc(first, "show listeners"))
        assert stack.web_env["GUNICORN_BIND"] in listeners and f":{port}" not in listeners
    finally:
        stop(other, timeout=40)
    # Stopping the second took nothing of the first's: its socket is there and answers.
    assert first.is_socket() and not second.exists()
    assert gunicornc(first, "show workers")["count"] == 2
    assert not (Path(stack.web_env["HOME"]) / ".gunicorn").exists()  # gunicorn's per-user default, unused
