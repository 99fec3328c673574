"""CHANGELOG.md's migration tables (tests/releases.py) say what the migrations on disk say.

A table that names a migration that does not exist, a newest table that is not today's last
migrations (a migration added and not listed under "Unreleased"), or releases whose migrations do
not follow one another would each make the upgrade test build a database no installation ran.
"""

import pytest
from django.db.migrations.loader import MigrationLoader

from tests.releases import PROJECT_APPS, UNRELEASED, releases_read, releases_recorded


@pytest.fixture(scope="module")
def graph():
    return MigrationLoader(None, ignore_no_migrations=True).graph


def test_there_is_a_previous_release_to_upgrade_from():
    names = [release.name for release in releases_recorded()]
    assert names[-1] == "pre-0.1.0", names  # the oldest state installations ran
    assert "0.1.0" in names


def test_every_recorded_migration_exists_and_every_release_names_every_app(graph):
    for release in releases_recorded():
        assert set(release.migrations) == set(PROJECT_APPS), release.name
        for node in release.targets:
            assert node in graph.nodes, f"{release.name}: no migration {node}"


def test_the_newest_table_is_todays_last_migration_of_every_app(graph):
    leaves = sorted(node for node in graph.leaf_nodes() if node[0] in PROJECT_APPS)
    newest = next(release for release in releases_read() if release.migrations)
    assert newest.targets == leaves, (
        f"CHANGELOG.md's newest migration table ({newest.name}) is not today's: list the new "
        f"migrations in a table under '## {UNRELEASED}'"
    )


def test_each_release_comes_after_the_one_before(graph):
    # Every migration of the older release is among those the newer one has applied: an upgrade
    # only ever migrates forwards.
    recorded = [release for release in releases_read() if release.migrations]
    for older, newer in zip(recorded[1:], recorded, strict=False):
        applied = {node for target in newer.targets for node in graph.forwards_plan(target)}
        assert set(older.targets) <= applied, f"{older.name} is not before {newer.name}"
        assert older.targets != newer.targets, f"{older.name} and {newer.name} have the same migrations"


def test_the_table_parser_reads_sections_and_refuses_a_malformed_row():
    text = (
        "# Changelog\n\n## Unreleased\n\n- a line\n\n## 1.0.0 - date\n\ntext\n\n"
        "| app | last migration |\n| --- | --- |\n| terminals | 0002_x |\n| syncadmin | 0001_initial |\n\nmore\n"
    )
    releases = releases_read(text)
    assert [(r.name, r.migrations) for r in releases] == [
        (UNRELEASED, {}),
        ("1.0.0", {"terminals": "0002_x", "syncadmin": "0001_initial"}),
    ]
    with pytest.raises(ValueError, match="not an"):
        releases_read("## 1.0.0\n\n| app | last migration |\n| --- | --- |\n| terminals | latest |\n")
