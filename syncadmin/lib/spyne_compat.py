"""spyne 2.14 (its last release) on Python 3.12 and 3.13: the one import-time gap, closed.

spyne ships its own copy of six (1.14) as ``spyne.util.six``, whose ``spyne.util.six.moves.*``
names (``moves.collections_abc`` and friends, imported all over spyne) are served by a
``sys.meta_path`` importer that only has the old ``find_module``/``load_module`` protocol.
Python 3.12 dropped the fallback to that protocol, so ``import spyne`` fails there with
``No module named 'spyne.util.six.moves'``. ``install()`` adds a finder with ``find_spec`` that
hands those names to six's own importer, as six 1.16 does for itself. On 3.11 the fallback
still works and ``install()`` leaves ``sys.meta_path`` alone.

The other 3.13 gap, the removed ``cgi`` module (``spyne.server.wsgi`` imports it), is filled by
the ``legacy-cgi`` package, a dependency only on 3.13+ (requirements.in).

Imported before spyne everywhere: by the settings (so anything that sets Django up, tests,
benchmarks and the chaos suite included, can import spyne) and by ``terminals.soap``.
What happens if spyne ever stops importing, and the plan to replace it: docs/operations/python.md.
"""

import sys
from importlib.machinery import ModuleSpec
from importlib.util import spec_from_loader
from types import ModuleType

SIX = "spyne.util.six"
MOVES = SIX + ".moves"


class SpyneSixLoader:
    """Loads a ``spyne.util.six.moves.*`` name through six's own importer (``load_module``)."""

    def __init__(self, importer) -> None:
        self.importer = importer
        self.own_specs: dict[str, ModuleSpec | None] = {}

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = self.importer.load_module(spec.name)
        # A moved module is the real one (moves.collections_abc *is* collections.abc): import
        # machinery stamps our spec on it next; exec_module gives it its own back.
        self.own_specs[spec.name] = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module: ModuleType) -> None:
        name = getattr(module.__spec__, "name", None)
        if name in self.own_specs:
            own = self.own_specs.pop(name)
            if own is not None:
                module.__spec__ = own


class SpyneSixFinder:
    """``find_spec`` for the names spyne's six knows; every other import passes by untouched."""

    def find_spec(self, fullname: str, path=None, target=None) -> ModuleSpec | None:
        if not fullname.startswith(MOVES):
            return None
        six = sys.modules.get(SIX)
        importer = getattr(six, "_importer", None)
        if importer is None or fullname not in importer.known_modules:
            return None
        return spec_from_loader(fullname, SpyneSixLoader(importer), is_package=importer.is_package(fullname))


def needed(version_info=sys.version_info) -> bool:
    """The legacy import protocol went away in 3.12."""
    return version_info >= (3, 12)


def install() -> None:
    """Put the finder on ``sys.meta_path`` once, where it is needed."""
    if needed() and not any(isinstance(finder, SpyneSixFinder) for finder in sys.meta_path):
        sys.meta_path.append(SpyneSixFinder())


install()
