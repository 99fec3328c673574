"""`make lint`'s migration check: django-migration-linter on PostgreSQL's SQL of every migration of the project.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m tests.migration_lint [APP [MIGRATION]]

Exit 1 when a migration would lock a big table against writes while it runs (CREATE or DROP
INDEX without CONCURRENTLY, a unique constraint built in place), or would break the code still
running during an upgrade (a dropped or renamed column or table, NOT NULL on an existing column,
a changed column type), or is a data migration written against today's models; every warning of
the linter counts as an error. The SQL is PostgreSQL's, the production database's, so it needs
a PostgreSQL server; it only reads (sqlmigrate prints SQL, it runs none). Initial migrations are
left out: they create empty tables. docs/operations/upgrades.md, "Safe migrations".
"""

import logging
import os
import sys

import django
from django.db import connection
from django_migration_linter import MigrationLinter

from tests.releases import PROJECT_APPS

# Released migrations the linter flags that stay as they are: a migration that ran in the field is
# never edited (a new one repairs what it did). Each with the checks accepted and why.
ACCEPTED = {
    # Released before 0.1.0 (commit 8864e15): rebuilt the retention index as a partial one and the
    # central store's unique key, in one transaction and without CONCURRENTLY, so it held writes to
    # the message table for as long as the index build took (docs/operations/upgrades.md gives the
    # time on 1,000,000 rows). Every recorded installation has run it; one that has not should run
    # it in a quiet hour (stop the SOAP gateway and the workers, migrate, start them).
    ("queue_messages", "0006_fewer_index_writes"): {
        "CREATE_INDEX",
        "CREATE_INDEX_EXCLUSIVE",
        "DROP_INDEX",
        "ADD_UNIQUE",
    },
}


class ProjectLinter(MigrationLinter):
    """The linter with the accepted checks of each released migration, and none of any other."""

    def lint_migration(self, migration) -> None:
        accepted = sorted(ACCEPTED.get((migration.app_label, migration.name), ()))
        if accepted:
            print(f"({migration.app_label}, {migration.name})... accepted as released: {', '.join(accepted)}")
        self.exclude_migration_tests = accepted
        super().lint_migration(migration)


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")
    django.setup()
    logging.getLogger("django_migration_linter").setLevel(logging.WARNING)  # its INFO line per migration
    if connection.vendor != "postgresql":
        print("tests.migration_lint reads PostgreSQL's SQL: set DATABASE_URL=postgres://...", file=sys.stderr)
        return 2
    app_label, migration_name = (argv + [None, None])[:2]
    linter = ProjectLinter(
        include_apps=[app_label] if app_label else list(PROJECT_APPS),
        no_cache=True,
        all_warnings_as_errors=True,
        ignore_initial_migrations=True,
        quiet=["ok", "ignore"],
    )
    linter.lint_all_migrations(app_label=app_label, migration_name=migration_name)
    linter.print_summary()
    return 1 if linter.has_errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
