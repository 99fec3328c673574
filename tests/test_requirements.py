"""The dependency lock: every package pinned and hashed, the hand-written lists and the lock agree,
and the environment the tests run in is the locked one (so CI tests what production installs)."""

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> dict[str, tuple[str, int]]:
    """{package: (version, number of hashes)} of a pip-compile output."""
    pins, current = {}, None
    for line in (ROOT / name).read_text().splitlines():
        if match := PIN.match(line):
            current = _norm(match[1])
            pins[current] = (match[2], 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            pins[current] = (pins[current][0], pins[current][1] + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            assert line.startswith(" "), f"{name}: not a pinned requirement: {line!r}"
    return pins


def _direct(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = PIN.match(line)
        assert match, f"{name}: a direct dependency must be pinned with ==: {line!r}"
        out[_norm(match[1])] = match[2]
    return out


LOCKS = [
    ("requirements.txt", ["requirements.in"]),
    ("requirements-dev.txt", ["requirements.in", "requirements-dev.in"]),
]


@pytest.mark.parametrize(("lock", "sources"), LOCKS)
def test_every_package_is_pinned_hashed_and_the_lock_matches_the_hand_written_list(lock, sources):
    pins = _lock(lock)
    assert len(pins) > len(_direct(sources[-1])), "the lock holds the transitive dependencies too"
    for name, (ver, hashes) in pins.items():
        assert hashes, f"{lock}: {name}=={ver} has no hash"
    for source in sources:
        for name, ver in _direct(source).items():
            assert pins.get(name, (None,))[0] == ver, f"{source} pins {name}=={ver}, {lock} has {pins.get(name)}"


def test_the_runtime_lock_is_a_subset_of_the_dev_lock_at_the_same_versions():
    runtime, dev = _lock("requirements.txt"), _lock("requirements-dev.txt")
    assert {n: v for n, (v, _) in runtime.items()} == {n: dev[n][0] for n in runtime if n in dev}
    assert set(runtime) <= set(dev)


def test_the_tests_run_in_the_locked_environment():
    drift = {}
    for name, (ver, _) in _lock("requirements-dev.txt").items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != ver:
            drift[name] = (ver, installed)
    assert not drift, f"installed packages differ from requirements-dev.txt (run `make install`): {drift}"


def test_the_soap_parser_has_the_libxml2_security_fixes():
    # lxml 6.2.0 bundles the libxml2 fixes for the parser that reads untrusted SOAP bodies.
    assert etree.LXML_VERSION >= (6, 2, 0, 0)
