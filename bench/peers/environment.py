"""The peers' own virtualenv: bench/.peers-venv, made and filled by the benchmark itself.

The peers (PgQueuer, its driver) and the profiler (py-spy) are benchmark tools, not the project's
dependencies: they go into a virtualenv of their own from the pinned ``requirements.txt`` next to
this file, never into the project's requirements or its .venv. Made once; filled again only when
the pinned list changes (its hash is kept in the virtualenv). Needs PyPI (or a mirror pip is
configured for) the first time: ``bench/engine.py --no-peers`` on a machine without.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
VENV = HERE.parent / ".peers-venv"


def pinned() -> list[str]:
    """The requirement lines, each ``name==version`` (a line that is not exits: pins only)."""
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if loose := [line for line in lines if "==" not in line or any(c in line for c in "<>~;@")]:
        raise SystemExit(f"{REQUIREMENTS}: only exact pins (name==version), not {loose}")
    return lines


def peers_python(root: Path = VENV) -> Path:
    """The peers' interpreter, the virtualenv made or refreshed first if its pins changed."""
    python = root / "bin" / "python"
    stamp = root / ".requirements-sha256"
    want = hashlib.sha256("\n".join(pinned()).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    print(f"  (installing the peers' pinned versions into {root} ...)", flush=True)
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                          str(REQUIREMENTS)], capture_output=True, text=True)  # fmt: skip
    if pip.returncode:
        raise SystemExit(f"installing the peers failed (bench/engine.py --no-peers skips them):\n{pip.stderr[-3000:]}")
    stamp.write_text(want)
    return python


if __name__ == "__main__":
    print(peers_python())
    sys.exit(0)
