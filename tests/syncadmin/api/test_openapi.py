"""The OpenAPI document: served at /api/v1/openapi.json, equal to the committed docs/api/openapi.json (so a
change of the API shows in review), and browsable at /api/v1/docs with every asset served by the hub.

When the API changes on purpose, regenerate the committed copy:

    .venv/bin/python manage.py export_openapi_schema --api syncadmin.api.main.api --indent 2 --sorted \\
        --output docs/api/openapi.json
"""

import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "api" / "openapi.json"
REGENERATE = (
    ".venv/bin/python manage.py export_openapi_schema --api syncadmin.api.main.api --indent 2 --sorted "
    "--output docs/api/openapi.json"
)


def test_the_served_schema_is_the_committed_one(client):
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(COMMITTED.read_text()), f"the API changed: regenerate with {REGENERATE}"
    assert client.get("/api/v1/openapi.json").json() == served.json()  # the same document on every call


def test_every_error_is_documented_as_a_problem_and_every_post_takes_an_idempotency_key(client):
    schema = client.get("/api/v1/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (path, method, status)
            headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
            assert headers == (["Idempotency-Key"] if method == "post" else []), (path, method)


@pytest.mark.django_db
def test_the_docs_page_loads_its_assets_from_the_hub_only(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "an asset from another host"
    assets = re.findall(r"(?:src|href)=\"/static/([^\"]+)\"", html)
    assert {"ninja/swagger-ui-bundle.js", "ninja/swagger-ui.css", "ninja/swagger-ui-init.js"} <= set(assets)
    for asset in assets:
        assert finders.find(asset), f"{asset} is not among the hub's static files"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/openapi.json"])
def test_the_documents_answer_reads_only(client, path):
    assert client.head(path).status_code == 200
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(path)
        assert response.status_code == 405, (method, response.status_code)
        assert response["Content-Type"] == "application/problem+json"
        assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
