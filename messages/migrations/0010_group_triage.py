"""Failure-group triage (issue 20): an owner, a status and a ticket link on each dead-letter group's note,
the history of every change, and ``triage_deadletter`` for the Support and Terminal admins groups.
"""

from django.db import migrations, models

PERMISSION = ("deadletter", "triage_deadletter", "Can triage dead-letter groups (owner, status, ticket)")
GROUPS = ["Support", "Terminal admins"]


def add_permission(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    model, codename, name = PERMISSION
    ct, _ = ContentType.objects.get_or_create(app_label="queue_messages", model=model)
    perm, _ = Permission.objects.get_or_create(content_type=ct, codename=codename, defaults={"name": name})
    for group in Group.objects.filter(name__in=GROUPS):
        group.permissions.add(perm)


def remove_permission(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="queue_messages", codename=PERMISSION[1]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('queue_messages', '0009_queue_pauses'),
        ('syncadmin', '0003_console_groups'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AddField(
            model_name='deadlettergroupnote',
            name='owner',
            field=models.CharField(blank=True, max_length=150),
        ),
        migrations.AddField(
            model_name='deadlettergroupnote',
            name='status',
            field=models.CharField(choices=[('new', 'New'), ('investigating', 'Investigating'), ('on_hold', 'On hold'), ('fixed', 'Fixed, waiting for retry')], default='new', max_length=16),
        ),
        migrations.AddField(
            model_name='deadlettergroupnote',
            name='ticket_url',
            field=models.URLField(blank=True, max_length=500),
        ),
        migrations.CreateModel(
            name='DeadLetterGroupEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('grouping', models.CharField(max_length=16)),
                ('key', models.CharField(max_length=255)),
                ('kind', models.CharField(choices=[('triage', 'Triage'), ('recurred', 'Recurred')], max_length=16)),
                ('at', models.DateTimeField()),
                ('actor', models.CharField(max_length=150)),
                ('from_status', models.CharField(blank=True, max_length=16)),
                ('to_status', models.CharField(blank=True, max_length=16)),
                ('detail', models.TextField(blank=True)),
            ],
            options={
                'ordering': ['-at', '-id'],
                'indexes': [models.Index(fields=['grouping', 'key', 'at'], name='deadletter_group_event_idx')],
            },
        ),
        migrations.RunPython(add_permission, remove_permission),
    ]
