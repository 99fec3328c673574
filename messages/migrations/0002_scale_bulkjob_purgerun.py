"""Background bulk jobs, retention purge runs, and the console permissions that go with them.

``restore_message`` (Discarded -> Received) is given to Terminal admins only; the new view
permissions to every console group (the groups come from syncadmin 0003).
"""

import django.db.models.deletion
from django.db import migrations, models

PERMISSIONS = [
    # (model, codename, name, groups)
    ("message", "restore_message", "Can restore discarded messages", ["Terminal admins"]),
    ("bulkjob", "view_bulkjob", "Can view bulk job", ["Viewers", "Support", "Terminal admins"]),
    ("purgerun", "view_purgerun", "Can view purge run", ["Viewers", "Support", "Terminal admins"]),
]


def add_permissions(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for model, codename, name, groups in PERMISSIONS:
        ct, _ = ContentType.objects.get_or_create(app_label="queue_messages", model=model)
        perm, _ = Permission.objects.get_or_create(content_type=ct, codename=codename, defaults={"name": name})
        for group in Group.objects.filter(name__in=groups):
            group.permissions.add(perm)


def remove_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(
        content_type__app_label="queue_messages", codename__in=[p[1] for p in PERMISSIONS]
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('queue_messages', '0001_initial'),
        ('terminals', '0001_initial'),
        ('syncadmin', '0003_console_groups'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.CreateModel(
            name='BulkJob',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('action', models.CharField(choices=[('retry', 'Retry'), ('discard', 'Discard'), ('restore', 'Restore')], max_length=16)),
                ('params', models.JSONField(default=dict)),
                ('state', models.CharField(choices=[('Pending', 'Pending'), ('Running', 'Running'), ('Done', 'Done'), ('Cancelled', 'Cancelled'), ('Failed', 'Failed')], default='Pending', max_length=16)),
                ('total', models.IntegerField(null=True)),
                ('done', models.IntegerField(default=0)),
                ('changed', models.IntegerField(default=0)),
                ('max_id', models.BigIntegerField(null=True)),
                ('last_id', models.BigIntegerField(default=0)),
                ('cancel_requested', models.BooleanField(default=False)),
                ('cancelled_by', models.CharField(blank=True, max_length=150)),
                ('runner', models.CharField(blank=True, max_length=64)),
                ('actor', models.CharField(max_length=150)),
                ('reason', models.TextField(blank=True)),
                ('error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField()),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.CreateModel(
            name='BulkJobItem',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('message_id', models.BigIntegerField()),
                ('job', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='items', to='queue_messages.bulkjob')),
            ],
            options={
                'indexes': [models.Index(fields=['job', 'message_id'], name='bulkjobitem_job_msg_idx')],
            },
        ),
        migrations.CreateModel(
            name='PurgeRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('started_at', models.DateTimeField(db_index=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('duration_ms', models.FloatField(null=True)),
                ('messages_removed', models.IntegerField(default=0)),
                ('events_removed', models.IntegerField(default=0)),
                ('deadletters_removed', models.IntegerField(default=0)),
                ('batches', models.IntegerField(default=0)),
                ('more', models.BooleanField(default=False)),
                ('trigger', models.CharField(default='schedule', max_length=32)),
                ('error', models.TextField(blank=True)),
                ('cutoff', models.DateTimeField(null=True)),
                ('deadletter_cutoff', models.DateTimeField(null=True)),
            ],
            options={
                'ordering': ['-started_at', '-pk'],
            },
        ),
        migrations.AddIndex(
            model_name='bulkjob',
            index=models.Index(fields=['state', 'created_at'], name='bulkjob_state_idx'),
        ),
        migrations.RunPython(add_permissions, remove_permissions),
    ]
