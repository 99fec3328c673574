"""The releases recorded in CHANGELOG.md and the last migration of every app at each.

CHANGELOG.md is the one place a release's migrations are written (docs/operations/upgrades.md,
"Releases and their migrations"): under a release's `## <name>` heading, a table headed
`| app | last migration |`. The upgrade test makes one case per release from it, so recording a
release is all it takes to test upgrading from it.
"""

import re
from dataclasses import dataclass
from pathlib import Path

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"
UNRELEASED = "Unreleased"
# The project's apps, by app label: the ones whose migrations a release records.
PROJECT_APPS = ("queue_messages", "reconciliation", "syncadmin", "terminals")

_HEADING = re.compile(r"^## (\S+)", re.MULTILINE)
_TABLE_HEAD = re.compile(r"^\|\s*app\s*\|\s*last migration\s*\|\s*$")
_ROW = re.compile(r"^\|\s*([a-z_]+)\s*\|\s*([0-9]{4}_\w+)\s*\|\s*$")


@dataclass(frozen=True)
class Release:
    name: str  # "0.1.0", "pre-0.1.0", or UNRELEASED
    migrations: dict[str, str]  # app label -> its last migration; empty when the section has no table

    @property
    def targets(self) -> list[tuple[str, str]]:
        return sorted(self.migrations.items())


def releases_read(text: str | None = None) -> list[Release]:
    """Every `## ` section of the changelog, newest first, with its migration table."""
    text = CHANGELOG.read_text(encoding="utf-8") if text is None else text
    headings = list(_HEADING.finditer(text))
    releases = []
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        section = text[heading.end() : following.start() if following else len(text)]
        releases.append(Release(name=heading.group(1), migrations=_table(section, heading.group(1))))
    return releases


def _table(section: str, name: str) -> dict[str, str]:
    lines = section.splitlines()
    heads = [i for i, line in enumerate(lines) if _TABLE_HEAD.match(line)]
    if not heads:
        return {}
    if len(heads) > 1:
        raise ValueError(f"{name}: more than one migration table")
    migrations = {}
    for line in lines[heads[0] + 2 :]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        row = _ROW.match(line)
        if row is None:
            raise ValueError(f"{name}: not an `| app | migration |` row: {line!r}")
        app, migration = row.groups()
        if app in migrations:
            raise ValueError(f"{name}: {app} appears twice")
        migrations[app] = migration
    return migrations


def releases_recorded() -> list[Release]:
    """The numbered releases and earlier recorded states that have a migration table, newest first."""
    return [release for release in releases_read() if release.name != UNRELEASED and release.migrations]
