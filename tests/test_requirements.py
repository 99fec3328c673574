"""The dependency lock: every package pinned and hashed, the hand-written lists and the lock agree,
one lock serves every supported Python (its markers pick what each needs), and the environment the
tests run in is the locked one (so CI tests what production installs)."""

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

import pytest
from lxml import etree
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> list[tuple[str, str, Marker | None, int]]:
    """[(package, version, marker, number of hashes)] of the lock: a package the resolver splits by
    Python version (a newer release needs a newer 3.11.x) has one entry per marker."""
    entries = []
    for line in (ROOT / name).read_text().splitlines():
        if match := PIN.match(line):
            entries.append((_norm(match[1]), match[2], Marker(match[3]) if match[3] else None, 0))
        elif line.strip().startswith("--hash=sha256:") and entries:
            package, ver, marker, hashes = entries[-1]
            entries[-1] = (package, ver, marker, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            assert line.startswith(" "), f"{name}: not a pinned requirement: {line!r}"
    return entries


def _direct(name: str) -> dict[str, tuple[str, str | None]]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = PIN.match(line)
        assert match, f"{name}: a direct dependency must be pinned with ==: {line!r}"
        out[_norm(match[1])] = (match[2], match[3])
    return out


def _supported() -> list[str]:
    """The minor versions pyproject.toml's requires-python admits ("3.11", "3.12", ...)."""
    spec = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    return [f"3.{minor}" for minor in range(30) if f"3.{minor}.0" in spec or f"3.{minor}.99" in spec]


def _environment(python: str) -> dict[str, str]:
    """This machine's marker environment, as if it ran `python` (its newest patch release)."""
    return default_environment() | {"python_version": python, "python_full_version": f"{python}.99", "extra": ""}


def _applies(marker: Marker | None, environment: dict[str, str]) -> bool:
    return marker is None or marker.evaluate(environment)


def _selected(lock: str, environment: dict[str, str]) -> dict[str, str]:
    """{package: version} that `pip install -r lock` installs where `environment` holds."""
    chosen: dict[str, str] = {}
    for package, ver, marker, _ in _lock(lock):
        if _applies(marker, environment):
            assert package not in chosen, f"{lock}: two versions of {package} for {environment['python_version']}"
            chosen[package] = ver
    return chosen


LOCKS = [
    ("requirements.txt", ["requirements.in"]),
    ("requirements-dev.txt", ["requirements.in", "requirements-dev.in"]),
]


@pytest.mark.parametrize(("lock", "sources"), LOCKS)
def test_every_package_is_pinned_hashed_and_the_lock_matches_the_hand_written_list(lock, sources):
    entries = _lock(lock)
    assert len({package for package, *_ in entries}) > len(_direct(sources[-1])), "the lock holds the transitive ones"
    for package, ver, _, hashes in entries:
        assert hashes, f"{lock}: {package}=={ver} has no hash"
    for source in sources:
        for name, (ver, marker) in _direct(source).items():
            locked = [(v, m) for package, v, m, _ in entries if package == name]
            assert locked, f"{source} pins {name}=={ver}, {lock} does not have it"
            assert {v for v, _ in locked} == {ver}, f"{source} pins {name}=={ver}, {lock} has {locked}"
            if marker:
                # The .in's marker survives into the lock (pip-compile would drop the line instead).
                for python in _supported():
                    environment = _environment(python)
                    wanted = Marker(marker).evaluate(environment)
                    assert any(_applies(m, environment) for _, m in locked) == wanted, (lock, name, python)


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_the_runtime_lock_is_a_subset_of_the_dev_lock_at_the_same_versions(python):
    runtime = _selected("requirements.txt", _environment(python))
    dev = _selected("requirements-dev.txt", _environment(python))
    assert runtime == {name: dev.get(name) for name in runtime}


def test_the_supported_pythons_are_3_11_to_3_13_for_the_project_the_lock_and_the_makefile():
    assert _supported() == ["3.11", "3.12", "3.13"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PYTHONS \?= 3\.13 3\.12 3\.11$", makefile, re.M), "the Makefile looks for them newest first"
    for lock, _ in LOCKS:
        header = (ROOT / lock).read_text()
        assert "--universal" in makefile and "--python-version 3.11" in makefile, "one lock resolved from 3.11 up"
        assert header.startswith("# This file was autogenerated by uv"), f"{lock}: made by `make lock`"


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_the_lock_installs_a_complete_set_on_every_supported_python(python):
    """legacy-cgi on 3.13 only, and every requirement the installed packages declare for that Python is
    in the lock at a version it accepts. (CI installs the lock on each version with --require-hashes,
    which fails on anything missing; this is the quick check of the same.)"""
    environment = _environment(python)
    chosen = _selected("requirements-dev.txt", environment)
    assert ("legacy-cgi" in chosen) == (python >= "3.13")
    assert ("legacy-cgi" in _selected("requirements.txt", environment)) == (python >= "3.13")
    missing = []
    for dist in distributions():
        if _norm(dist.metadata["Name"]) not in chosen:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            if not _applies(requirement.marker, environment):
                continue
            locked = chosen.get(_norm(requirement.name))
            if locked is None or not requirement.specifier.contains(locked, prereleases=True):
                missing.append(f"{dist.metadata['Name']} needs {requirement} on {python}: lock has {locked}")
    assert not missing, missing


def test_the_tests_run_in_the_locked_environment():
    drift = {}
    for name, ver in _selected("requirements-dev.txt", default_environment()).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != ver:
            drift[name] = (ver, installed)
    assert not drift, (
        f"installed packages differ from requirements-dev.txt on {sys.version.split()[0]} (run `make install`): {drift}"
    )


def test_the_soap_parser_has_the_libxml2_security_fixes():
    # lxml 6.2.0 bundles the libxml2 fixes for the parser that reads untrusted SOAP bodies.
    assert etree.LXML_VERSION >= (6, 2, 0, 0)
