"""bench/peers/: the peers are installed from exact pins only, never from a range."""

import pytest

from bench.peers import PGQUEUER, PGQUEUER_FORMS, environment


def test_the_peers_requirements_are_exact_pins_with_pgqueuer_and_py_spy():
    pins = dict(line.lower().split("==") for line in environment.pinned())
    assert {"pgqueuer", "asyncpg", "py-spy"} <= set(pins)
    assert PGQUEUER == pins["pgqueuer"] and all(PGQUEUER in label for label, _ in PGQUEUER_FORMS)
    assert [work for _, work in PGQUEUER_FORMS] == ["noop", "same"]


@pytest.mark.parametrize("line", ["pgqueuer>=1.6", "pgqueuer", "asyncpg~=0.32", "py-spy==0.4.3; python_version>'3'"])
def test_a_requirement_that_is_not_an_exact_pin_is_refused(tmp_path, monkeypatch, line):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# a comment\nanyio==4.16.0\n{line}\n")
    monkeypatch.setattr(environment, "REQUIREMENTS", requirements)
    with pytest.raises(SystemExit, match="only exact pins"):
        environment.pinned()
