"""Static files: hashed names once collectstatic has run, the plain names before (make run, tests)."""

import os
import re
import subprocess
import sys

import pytest

from syncadmin.lib.staticfiles import HashedStaticFilesStorage
from tests.processes import ROOT


def test_without_a_manifest_the_plain_names_are_used(tmp_path):
    storage = HashedStaticFilesStorage(location=tmp_path, base_url="/static/")
    assert storage.url("console/console.js") == "/static/console/console.js"


def test_after_collectstatic_the_names_carry_a_hash_of_the_content(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}, "SYNC_VAR_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    storage = HashedStaticFilesStorage(location=tmp_path / "static", base_url="/static/")
    url = storage.url("console/console.js")
    assert re.fullmatch(r"/static/console/console\.[0-9a-f]{12}\.js", url), url
    assert (tmp_path / "static" / url.removeprefix("/static/")).exists()
    assert (tmp_path / "static" / (url.removeprefix("/static/") + ".gz")).exists()  # compressed too
    with pytest.raises(ValueError):  # a name collectstatic never saw is an error, not a silent plain name
        storage.url("console/missing.js")
