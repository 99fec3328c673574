"""The shape of the source tree (docs/development.md, "Module map"): what import-linter cannot see.

import-linter (`make lint`, contracts in pyproject.toml) checks the direction of every import.
These check the rest of the house rules: no import inside a function but where Django needs one
(an AppConfig's ready(): models exist only once the registry is ready), no private name imported
from another module, and no source file over the size a reader takes in.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("syncadmin", "messages", "terminals", "reconciliation")
MAX_LINES = 400


def source_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _function_imports(tree: ast.AST):
    """(function name, line) of every import inside a function body."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    yield node.name, inner.lineno


@pytest.mark.parametrize("path", list(source_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_are_at_module_level_except_in_an_app_config_ready(path):
    found = [(name, line) for name, line in _function_imports(ast.parse(path.read_text())) if name != "ready"]
    assert not found, f"{path.relative_to(ROOT)}: imports inside functions {found}"
    if path.name != "apps.py":
        ready = [line for name, line in _function_imports(ast.parse(path.read_text())) if name == "ready"]
        assert not ready, f"{path.relative_to(ROOT)}: imports inside ready() outside an app config"


@pytest.mark.parametrize("path", list(source_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_imported_from_another_module(path):
    tree = ast.parse(path.read_text())
    private = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not private, f"{path.relative_to(ROOT)} imports private names {private}"


def test_no_source_file_is_longer_than_a_reader_takes_in():
    long = {
        str(path.relative_to(ROOT)): n
        for path in source_files()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines: {long}"
