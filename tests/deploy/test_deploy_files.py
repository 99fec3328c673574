"""The deploy/ samples stay true to the code: every setting documented, limits that agree, check --deploy clean."""

import os
import re
import secrets
from pathlib import Path

import pytest
from django.conf import settings

from tests.deploy import recipe
from tests.processes import check_deploy

ROOT = Path(settings.BASE_DIR)
DEPLOY = ROOT / "deploy"


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_env_example_lists_every_setting_read_from_the_environment():
    source = (ROOT / "syncadmin" / "settings.py").read_text()
    read = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))
    assert len(read) > 30  # the regex does find them
    missing = read - set(env_example())
    assert not missing, f"add to deploy/.env.example: {sorted(missing)}"


def test_nginx_body_limit_matches_the_soap_limit():
    conf = (DEPLOY / "nginx" / "syncadmin.conf").read_text()
    size = re.search(r"client_max_body_size\s+(\d+)([km]?);", conf)
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[size.group(2)]
    assert int(size.group(1)) * factor == settings.SYNC_MAX_BODY_BYTES == int(env_example()["SYNC_MAX_BODY_BYTES"])
    assert (
        "ssl_certificate" in conf and "X-Forwarded-Proto" in (DEPLOY / "nginx" / "syncadmin_proxy_params").read_text()
    )


def test_systemd_units_stop_qcluster_through_its_main_process():
    worker = (DEPLOY / "systemd" / "syncadmin-worker@.service").read_text()
    # sync_cluster: qcluster with the due check (messages/cluster.py), as `serve` runs it too
    assert "KillMode=mixed" in worker and "ExecStart=/opt/syncadmin/.venv/bin/python manage.py sync_cluster" in worker
    web = (DEPLOY / "systemd" / "syncadmin-web.service").read_text()
    assert "deploy/gunicorn.conf.py" in web and "ExecReload=/bin/kill -s HUP $MAINPID" in web


def test_gunicorn_config_is_valid_python_with_sane_values():
    namespace: dict = {"__file__": str(DEPLOY / "gunicorn.conf.py")}
    exec(compile((DEPLOY / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["workers"] >= 1 and namespace["worker_class"] == "gthread"
    assert namespace["graceful_timeout"] < namespace["timeout"] + 30


def test_check_deploy_is_clean_with_the_production_example(tmp_path):
    env = {
        **env_example(),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "SYNC_VAR_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_edge_proxy_sets_the_client_address_and_is_trusted():
    """nginx overwrites X-Forwarded-For with the address it sees (nothing the client sent survives),
    and the example trusts it; tests/deploy/test_proxy.py runs this file behind a real nginx."""
    params = (DEPLOY / "nginx" / "syncadmin_proxy_params").read_text()
    directives = [line.split("#")[0].strip() for line in params.splitlines()]
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in directives
    assert "127.0.0.1" in env_example()["SYNC_TRUSTED_PROXIES"].split(",")


@pytest.mark.skipif(
    not os.path.exists(recipe.SYSTEMD_ANALYZE) and not os.environ.get("CI"),
    reason="systemd-analyze is not installed (Debian package systemd; .ci/run installs it)",
)
def test_the_units_pass_systemd_analyze_verify(tmp_path):
    result = recipe.systemd_verify(tmp_path)  # the units with /opt/syncadmin made this checkout
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_the_gunicorn_config_gives_each_instance_its_own_control_socket_and_metrics_dir(tmp_path, monkeypatch):
    def load(**environ) -> dict:
        for key in ("RUNTIME_DIRECTORY", "GUNICORN_RUNTIME_DIR", "GUNICORN_BIND"):
            monkeypatch.delenv(key, raising=False)
        for key, value in environ.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SYNC_VAR_DIR", str(tmp_path))
        namespace: dict = {"__file__": str(DEPLOY / "gunicorn.conf.py")}
        exec(compile((DEPLOY / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
        return namespace

    unit = load(RUNTIME_DIRECTORY="/run/syncadmin-web")  # what systemd exports for RuntimeDirectory=%N
    assert unit["control_socket"] == "/run/syncadmin-web/gunicorn.ctl"
    assert unit["raw_env"] == ["PROMETHEUS_MULTIPROC_DIR=/run/syncadmin-web/prometheus"]
    a, b = load(GUNICORN_BIND="127.0.0.1:8001"), load(GUNICORN_BIND="127.0.0.1:8002")  # outside systemd
    assert a["control_socket"] != b["control_socket"] and a["raw_env"] != b["raw_env"]
    assert a["control_socket"].startswith(str(tmp_path)) and "RuntimeDirectory=%N" in recipe.WEB_UNIT.read_text()


def test_the_production_page_describes_what_the_stack_test_runs():
    """docs/operations/production.md and tests/deploy/test_production_stack.py must not drift: the page
    names the test, the files and commands it runs, and every value it fills in the env file."""
    page = (ROOT / "docs" / "operations" / "production.md").read_text()
    named = [
        "tests/deploy/test_production_stack.py",
        "tests/deploy/recipe.py",
        "deploy/systemd/syncadmin-web.service",
        "deploy/systemd/syncadmin-worker@.service",
        "deploy/nginx/syncadmin.conf",
        "deploy/gunicorn.conf.py",
        "deploy/.env.example",
        "systemd-analyze verify",
        "gunicornc",
        "RuntimeDirectory=%N",
        "PROMETHEUS_MULTIPROC_DIR",
        "collectstatic",
        "createsuperuser",
        "create_terminal",
        "check --deploy",
        *recipe.ENV_FILLED,
        *recipe.ENV_ADDED,
    ]
    missing = [name for name in named if f"`{name}" not in page and f"{name}`" not in page]
    assert not missing, f"docs/operations/production.md does not name: {missing}"
    for command in (
        recipe.unit_service(recipe.WEB_UNIT)["ExecStart"][0],
        recipe.unit_service(recipe.WORKER_UNIT)["ExecStart"][0],
    ):
        assert command in page, f"the page should quote the unit's ExecStart= {command!r}"
