"""spyne imports on the running Python (3.11, 3.12 or 3.13), its six.moves names resolve, and the
hook is there exactly where it is needed. Each check runs in a fresh interpreter: in this one spyne
was imported long ago (the settings import the hook first)."""

import subprocess
import sys
from pathlib import Path

import pytest
from spyne.util import six as spyne_six

from syncadmin.lib import spyne_compat

ROOT = Path(__file__).resolve().parents[3]
NEEDED = sys.version_info >= (3, 12)


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_spyne_imports_and_its_six_moves_names_resolve():
    run = _fresh(
        "import collections.abc, urllib.parse\n"
        "import syncadmin.lib.spyne_compat\n"
        "import spyne\n"
        # spyne.server.wsgi is what imports cgi (legacy-cgi on 3.13), the rest is what the gateway uses.
        "from spyne.server.wsgi import WsgiApplication\n"
        "from spyne.protocol.soap import Soap11\n"
        "from spyne.util.six.moves import collections_abc\n"
        "from spyne.util.six.moves.urllib.parse import urlparse\n"
        "assert collections_abc is collections.abc and urlparse is urllib.parse.urlparse\n"
        # A moved name is the real module, which keeps its own spec (importing it through six
        # must not rename collections.abc).
        "assert collections.abc.__spec__.name in ('collections.abc', '_collections_abc'), collections.abc.__spec__\n"
        "print('ok')\n"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "ok\n"


def test_without_the_hook_spyne_fails_to_import_on_3_12_and_later_and_imports_on_3_11():
    # What the hook is for: take it away and see. (On 3.11 the old import protocol still works.)
    run = _fresh("import spyne")
    if NEEDED:
        assert run.returncode != 0
        assert "No module named 'spyne.util.six.moves'" in run.stderr
    else:
        assert run.returncode == 0, run.stderr


def test_the_hook_touches_sys_meta_path_only_where_it_is_needed_and_once():
    run = _fresh(
        "import sys\n"
        "before = list(sys.meta_path)\n"
        "from syncadmin.lib import spyne_compat\n"
        "spyne_compat.install()\n"
        "import spyne\n"
        "added = [type(f).__name__ for f in sys.meta_path if f not in before]\n"
        "print([name for name in added if name != '_SixMetaPathImporter'])\n"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == ("['SpyneSixFinder']\n" if NEEDED else "[]\n")


@pytest.mark.parametrize(
    ("version_info", "needed"),
    [((3, 11, 7, "final", 0), False), ((3, 12, 0, "final", 0), True), ((3, 13, 0, "final", 0), True)],
)
def test_needed_from_3_12_on(version_info, needed):
    assert spyne_compat.needed(version_info) is needed


def test_the_finder_leaves_every_other_name_to_the_rest_of_the_import_system():
    finder = spyne_compat.SpyneSixFinder()
    assert finder.find_spec("json") is None
    assert finder.find_spec("spyne.util.six.moves.no_such_name") is None
    spec = finder.find_spec("spyne.util.six.moves.collections_abc")
    assert spec.loader.importer is spyne_six._importer
