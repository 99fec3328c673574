"""``python -m tests.chaos [--long] [pytest args]``: run the chaos suite on its own.

Short (CI) versions by default; ``--long`` runs the long ones (100 kills, 5-minute load with
50 terminals, 60 s database outage, 1,500 fuzzed envelopes...). The suite brings up its own
private PostgreSQL and Redis, so nothing else needs to be running. The checker's report of
every scenario is printed at the end and appended to $SYNC_VAR_DIR/chaos/chaos-results.jsonl.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    env = {**os.environ, "CHAOS": "1"}
    if "--long" in argv:
        env["CHAOS_LONG"] = "1"
    args = [a for a in argv if a != "--long"]
    return subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-m", "chaos", "tests/chaos", *args], cwd=ROOT, env=env
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
