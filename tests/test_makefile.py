"""The Makefile's choice of Python: the newest of 3.13, 3.12, 3.11 that runs and says it is that
version (a pyenv shim of a version pyenv has not selected is on the PATH and fails), on the PATH
or in pyenv's versions; `PYTHON=` overrides; and the virtualenv follows the interpreter.

Each case runs `make -s python` with a PATH holding only the interpreters the case sets out:
stand-ins that answer the question the Makefile asks the way a real Python does, and the real
interpreter running these tests."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")
RUNNING = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _python(folder: Path, name: str, version: str) -> Path:
    """A stand-in interpreter: prints what `python -c 'import sys; print(sys.executable, sys.version)'` prints."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$0 {version} (main, stand-in) [GCC]"\n')
    path.chmod(0o755)
    return path


def _shim(folder: Path, name: str) -> Path:
    """What pyenv's shim does for a version that is installed but not selected."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "pyenv: {name}: command not found" >&2\nexit 127\n')
    path.chmod(0o755)
    return path


def _make(tmp_path: Path, *args: str, target: str = "python") -> subprocess.CompletedProcess:
    env = {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")}
    command = [MAKE, "-s", target, f"VENV={tmp_path / 'venv'}", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _chosen(tmp_path: Path, *args: str) -> str:
    run = _make(tmp_path, *args)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_only_3_13_on_the_path(tmp_path):
    python = _python(tmp_path / "bin", "python3.13", "3.13.0")
    assert _chosen(tmp_path) == f"Python 3.13.0: {python} (the newest of 3.13 3.12 3.11 found)"


def test_3_12_before_3_11(tmp_path):
    python = _python(tmp_path / "bin", "python3.12", "3.12.1")
    _python(tmp_path / "bin", "python3.11", "3.11.7")
    assert _chosen(tmp_path) == f"Python 3.12.1: {python} (the newest of 3.13 3.12 3.11 found)"


def test_a_shim_that_fails_and_a_python3_13_that_is_not_3_13_are_passed_over(tmp_path):
    _shim(tmp_path / "bin", "python3.13")
    _python(tmp_path / "bin", "python3.12", "3.11.7")  # a python3.12 that is something else
    python = _python(tmp_path / "bin", "python3.11", "3.11.7")
    assert _chosen(tmp_path) == f"Python 3.11.7: {python} (the newest of 3.13 3.12 3.11 found)"


def test_pyenv_versions_when_the_path_has_only_shims(tmp_path):
    for name in ("python3.13", "python3.12", "python3.11"):
        _shim(tmp_path / "bin", name)
    python = _python(tmp_path / "pyenv" / "versions" / "3.13.0" / "bin", "python3.13", "3.13.0")
    assert _chosen(tmp_path) == f"Python 3.13.0: {python} (the newest of 3.13 3.12 3.11 found)"


def test_python_overrides_the_choice(tmp_path):
    _python(tmp_path / "bin", "python3.13", "3.13.0")
    python = _python(tmp_path / "elsewhere", "python", "3.11.7")
    assert _chosen(tmp_path, f"PYTHON={python}") == f"Python 3.11.7: {python} (PYTHON={python})"


def test_one_version_only_with_pythons(tmp_path):
    _python(tmp_path / "bin", "python3.13", "3.13.0")
    python = _python(tmp_path / "bin", "python3.11", "3.11.7")
    assert _chosen(tmp_path, "PYTHONS=3.11") == f"Python 3.11.7: {python} (the newest of 3.11 found)"


def test_a_python_override_that_does_not_run_stops_make(tmp_path):
    shim = _shim(tmp_path / "bin", "python3.12")
    run = _make(tmp_path, f"PYTHON={shim}")
    assert run.returncode != 0
    assert f"PYTHON={shim} does not run" in run.stderr


def test_no_supported_python_stops_make_and_says_what_to_do(tmp_path):
    _shim(tmp_path / "bin", "python3.13")
    _python(tmp_path / "bin", "python3.10", "3.10.13")
    run = _make(tmp_path)
    assert run.returncode != 0
    assert "No Python 3.13 3.12 3.11 runs here" in run.stderr
    assert "PYTHON=" in run.stderr


def test_the_real_interpreter_answers_as_the_makefile_expects(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / f"python{RUNNING}").symlink_to(sys.executable)
    line = _chosen(tmp_path, f"PYTHONS={RUNNING}")
    assert line.startswith(f"Python {sys.version.split()[0]}: "), line
    assert line.endswith(f" (the newest of {RUNNING} found)"), line


@pytest.mark.parametrize("same", [True, False])
def test_the_virtualenv_is_made_again_when_the_interpreter_changed(tmp_path, same):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / f"python{RUNNING}").symlink_to(sys.executable)
    venv.create(tmp_path / "venv", with_pip=False)
    other = "3.13" if RUNNING != "3.13" else "3.12"
    if not same:
        _python(tmp_path / "bin", f"python{other}", f"{other}.0")
    chooses = f"PYTHONS={RUNNING if same else other}"
    run = _make(tmp_path, chooses, "-n", target="install")
    assert run.returncode == 0, run.stderr
    remade = f"rm -rf {tmp_path / 'venv'}" in run.stdout
    assert remade is not same, run.stdout
    assert os.path.exists(tmp_path / "venv" / "bin" / "python")  # -n: nothing was run
