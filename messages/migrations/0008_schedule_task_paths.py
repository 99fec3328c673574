# The retention and bulk-job tasks moved from messages/tasks_scale.py to messages/tasks.py (issue 16).
# django-q2 keeps each schedule's task as a dotted path in the database: rewrite the stored ones.
# Tasks queued before the upgrade still carry the old paths: messages/tasks_scale.py re-exports
# them for one release.

from django.db import migrations

MOVED = {
    "messages.tasks_scale.purge": "messages.tasks.purge",
    "messages.tasks_scale.bulk_job_run": "messages.tasks.bulk_job_run",
    "messages.tasks_scale.bulk_jobs_resume": "messages.tasks.bulk_jobs_resume",
}


def rewrite(mapping):
    def run(apps, schema_editor):
        Schedule = apps.get_model("django_q", "Schedule")
        for old, new in mapping.items():
            Schedule.objects.filter(func=old).update(func=new)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("queue_messages", "0007_deadlettergroupnote_from_syncadmin"),
    ]

    operations = [
        migrations.RunPython(rewrite(MOVED), rewrite({new: old for old, new in MOVED.items()})),
    ]
