"""The docs stay true to the repository: the site builds with --strict and loads nothing from another
host, every repository path they cite exists, every setting is in the settings reference, and the
README stays short. When a module moves, the path test names every page that still cites the old
path."""

import contextlib
import io
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import Client
from lxml import etree

from messages.models import Message
from messages.outbound import update_create
from terminals.services import terminal_create
from terminals.soap.contract import CONTRACT_FAULTS, NS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
SETTINGS_REFERENCE = DOCS / "operations" / "settings.md"
INTEGRATOR_GUIDE = DOCS / "terminal-api.md"
XS = "{http://www.w3.org/2001/XMLSchema}"
README_LIMIT = 12 * 1024

# Top-level entries that are not the repository's own files (made by a run, a build or a tool).
NOT_IN_REPOSITORY = {".git", ".venv", "var", "site", "staticfiles", "__pycache__", ".pytest_cache", ".ruff_cache"}
FILE_SUFFIX = re.compile(r"\.(py|md|html|css|js|txt|in|toml|yml|yaml|conf|service|example|cfg|ini|sh|json)$")
CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
FENCE = re.compile(r"^\s*(```|~~~)")


def code_spans(page: Path) -> list[tuple[int, str]]:
    """(line number, text) of every inline code span outside fenced blocks."""
    spans, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            spans += [(number, m[1].strip()) for m in CODE_SPAN.finditer(line)]
    return spans


def repository_path(span: str) -> str | None:
    """The repository path a code span names, or None when it names something else.

    A path starts with one of the repository's top-level entries (`messages/`, `deploy/…`,
    `Makefile`) or has a slash and a file suffix; URLs (`/messages/`), environment paths
    (`$SYNC_VAR_DIR/…`), dotted names, commands and spans with spaces are not paths. A pytest
    node id (`tests/x.py::test_y`) names its file.
    """
    path = span.split("::", 1)[0]
    if not path or path[0] in "/$~<" or "://" in path or re.search(r"[\s*?<>{}=]", path):
        return None
    first = path.split("/", 1)[0]
    if first in NOT_IN_REPOSITORY:
        return None
    top = {p.name for p in ROOT.iterdir()} - NOT_IN_REPOSITORY
    if path in top or ("/" in path and (first in top or FILE_SUFFIX.search(path))):
        return path
    return None


def test_the_path_finder_tells_paths_from_other_code():
    assert repository_path("messages/services/processing.py") == "messages/services/processing.py"
    assert repository_path("deploy/nginx/syncadmin.conf") == "deploy/nginx/syncadmin.conf"
    assert repository_path("deploy/.env.example") == "deploy/.env.example"
    assert repository_path("tests/messages/test_claim.py::test_x") == "tests/messages/test_claim.py"
    assert repository_path("terminals/soap/") == "terminals/soap/"
    assert repository_path("nowhere/gone.py") == "nowhere/gone.py"  # a file path, even under a missing folder
    assert repository_path("Makefile") == "Makefile"
    for not_a_path in ("/messages/", "$SYNC_VAR_DIR/chaos", "var/admin_password", "messages.services.x", "make run"):
        assert repository_path(not_a_path) is None, not_a_path


def test_every_repository_path_in_the_readme_and_the_docs_exists():
    missing, checked = [], 0
    for page in PAGES:
        for number, span in code_spans(page):
            path = repository_path(span)
            if path is None:
                continue
            checked += 1
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}:{number}: `{span}`")
    assert checked > 100, "the path finder finds the docs' paths"
    assert not missing, "paths cited in the docs that do not exist:\n" + "\n".join(missing)


def test_the_readmes_links_point_at_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = [t.split("#", 1)[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in t]
    assert targets, "the README links into the docs"
    assert [t for t in targets if t and not (ROOT / t).exists()] == []


def test_the_readme_stays_short():
    size = len((ROOT / "README.md").read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes: move the detail into docs/"


def test_every_setting_is_in_the_settings_reference():
    source = (ROOT / "syncadmin" / "settings.py").read_text()
    read = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]*)\"", source))
    assert len(read) > 30  # the regex does find them
    reference = SETTINGS_REFERENCE.read_text()
    assert sorted(name for name in read if f"`{name}`" not in reference) == []


class AssetReferences(HTMLParser):
    """Every URL a page loads by itself: scripts, stylesheets, icons, images, frames, media."""

    LOADS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src", "video": "src"}

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and attrs.get("href"):
            if set((attrs.get("rel") or "").split()) & {"stylesheet", "icon", "preload", "modulepreload", "manifest"}:
                self.urls.append(attrs["href"])
        elif tag in self.LOADS and attrs.get(self.LOADS[tag]):
            self.urls.append(attrs[self.LOADS[tag]])
        if attrs.get("srcset"):
            self.urls += [part.split()[0] for part in attrs["srcset"].split(",") if part.strip()]


def is_external(url: str) -> bool:
    return bool(re.match(r"^([a-z][a-z0-9+.-]*:)?//", url.strip(), re.IGNORECASE))


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    # No --quiet: it hides the warnings that --strict turns into a failure.
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0 and "WARNING" not in result.stderr, result.stdout + result.stderr
    return site


def test_the_docs_build_with_strict(built_site):
    pages = {p.relative_to(built_site).as_posix() for p in built_site.rglob("index.html")}
    for page in ("index.html", "terminal-api/index.html", "operations/settings/index.html", "changelog/index.html"):
        assert page in pages


def test_the_built_site_loads_nothing_from_another_host(built_site):
    external = []
    for page in built_site.rglob("*.html"):
        parser = AssetReferences()
        parser.feed(page.read_text())
        external += [f"{page.relative_to(built_site)}: {url}" for url in parser.urls if is_external(url)]
    for sheet in built_site.rglob("*.css"):
        for url in re.findall(r"(?:url\(\s*['\"]?|@import\s+['\"])([^'\")\s]+)", sheet.read_text()):
            if is_external(url):
                external.append(f"{sheet.relative_to(built_site)}: {url}")
    assert not external, "\n".join(external)


def test_the_asset_check_sees_an_external_font():
    parser = AssetReferences()
    parser.feed('<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto"><a href="https://x.org">')
    assert [u for u in parser.urls if is_external(u)] == ["https://fonts.googleapis.com/css?family=Roboto"]


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table under a heading (code spans unwrapped), header row left out."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.split("\n\n|", 1)[1].split("\n\n", 1)[0].splitlines():
        cells = [c.strip() for c in ("|" + line if not line.startswith("|") else line).strip("|").split("|")]
        if set("".join(cells)) <= set("- "):
            continue
        rows.append(cells)
    return rows[1:]


def code(cell: str) -> str:
    match = re.match(r"^`([^`]+)`", cell)
    return match[1] if match else ""


@pytest.fixture(scope="module")
def wsdl_types():
    """{complexType name: [(element name, type name without prefix)]} of the served WSDL's own namespace."""
    answer = Client().get("/soap/terminal/v1/?wsdl")
    assert answer.status_code == 200
    schema = next(s for s in etree.fromstring(answer.content).iter(f"{XS}schema") if s.get("targetNamespace") == NS)
    return {
        t.get("name"): [(e.get("name"), e.get("type").split(":")[-1]) for e in t.iter(f"{XS}element")]
        for t in schema.findall(f"{XS}complexType")
    }


def test_the_integrator_guide_lists_every_type_and_field_of_the_wsdl(wsdl_types):
    operations = {name for name in wsdl_types if f"{name}Response" in wsdl_types}
    data_types = {
        name: fields
        for name, fields in wsdl_types.items()
        if name not in operations and not name.endswith(("Response", "Array"))
    }
    documented, current = set(), ""
    for cells in table_rows(INTEGRATOR_GUIDE.read_text(), "\n## Types\n"):
        current = code(cells[0]) or current
        documented.add((current, code(cells[1]), code(cells[2]).removeprefix("xs:")))
    served = {(name, field, kind) for name, fields in data_types.items() for field, kind in fields}
    assert documented == served


def test_the_integrator_guide_lists_every_operation_with_its_argument_and_reply(wsdl_types):
    operations = {name for name in wsdl_types if f"{name}Response" in wsdl_types}
    rows = table_rows(INTEGRATOR_GUIDE.read_text(), "\n## Operations\n")
    documented = {
        code(op): (re.findall(r"`([^`]+)`", arg)[:2], code(reply)) for op, arg, reply in (r[:3] for r in rows)
    }
    served = {
        op: ([wsdl_types[op][0][0], wsdl_types[op][0][1]], wsdl_types[f"{op}Response"][0][1]) for op in operations
    }
    assert documented == served


def test_the_integrator_guide_lists_every_fault_code():
    rows = table_rows(INTEGRATOR_GUIDE.read_text(), "\n## Faults\n")
    assert {code(cells[0]) for cells in rows} == CONTRACT_FAULTS | {"Server"}


def test_the_integrator_guides_zeep_example_runs_against_a_live_hub(live_server, transactional_db):
    guide = INTEGRATOR_GUIDE.read_text()
    example = re.search(r"## Python: zeep\n.*?```python\n(.*?)```", guide, re.DOTALL)[1]
    terminal, key = terminal_create(code="STORE12-T3")
    update_create(terminal=terminal, update_type="resync.request", entity_key="product", payload="{}")
    example = example.replace("https://hub.example.com", live_server.url).replace('"the-api-key"', repr(key))
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, str(INTEGRATOR_GUIDE), "exec"), namespace)  # the page's code, as an integrator runs it
    namespace["client"].transport.session.close()
    assert [(r.MessageId, r.Status) for r in namespace["results"]] == [("T3-000123", "Accepted")]
    assert Message.objects.get(terminal=terminal, message_id="T3-000123").sequence == 17
    assert namespace["statuses"][1].State == "Unknown"
    assert namespace["acknowledged"] == 1 and namespace["received"] == 1  # single-field replies: bare ints
    assert "Client.InvalidRequest" in printed.getvalue()
