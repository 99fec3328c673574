"""Run the real migrations to a given state, for the tests of data and state migrations and of upgrades."""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models.signals import post_migrate, pre_migrate


def migrate(targets=None):
    """Migrate the test database to ``targets`` (every app's latest when None); the apps as of then."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def release_targets(migrations: dict[str, str]) -> list[tuple[str, str]]:
    """A release's state as migration targets: the recorded apps at their migrations, every other app at its latest.

    The other apps' migrations come with their packages (Django, django-q2, django-axes), whose
    pinned versions a release of this project fixes; only this project's apps move between releases.
    """
    executor = MigrationExecutor(connection)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in migrations]
    return sorted(migrations.items()) + others


def applied_by(targets) -> set[tuple[str, str]]:
    """Every migration a database at ``targets`` has applied (the targets and all they depend on)."""
    graph = MigrationExecutor(connection).loader.graph
    return {node for target in targets for node in graph.forwards_plan(target)}


def database_build_at(targets):
    """The test database as an installation at ``targets`` has it; returns the apps as of then.

    Built the way that installation built it: every table dropped, then forward migrations only,
    exactly up to the targets (django-test-migrations' ``apply_initial_migration`` applies every
    migration that sorts before the last target, so a release state of several apps would come
    out with migrations the release never had). Then what ``migrate`` did after them at the time:
    the content types and default permissions of the models of that state (our own post_migrate
    receivers are left out: they are today's code, not the release's).
    """
    with connection.constraint_checks_disabled():
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(
                    connection.SchemaEditorClass.sql_delete_table % {"table": connection.ops.quote_name(table)}
                )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    plan = executor.migration_plan(targets, clean_start=True)
    assert all(not backwards for _, backwards in plan)
    receivers = pre_migrate.receivers, post_migrate.receivers
    pre_migrate.receivers, post_migrate.receivers = [], []
    try:
        state = executor.migrate(targets, plan=plan)
    finally:
        pre_migrate.receivers, post_migrate.receivers = receivers
    old_apps = state.apps
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=connection.alias, apps=old_apps)
    return old_apps
