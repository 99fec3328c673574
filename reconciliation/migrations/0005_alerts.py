"""Alerts: rules, incidents and the notification outbox (issue 20), the default rules, and the console groups' rights.

Every group sees the alerts page (view_incident, view_alertrule); Terminal admins also edit the
rules (change_alertrule). The default rules are the ones a store-sync hub wants on day one; an
admin tunes their thresholds from the console.
"""

import django.db.models.deletion
from django.db import migrations, models


# (kind, threshold, for_minutes): what each counts is in reconciliation.models.ALERT_UNITS.
DEFAULT_RULES = [
    ("backlog_overdue", 10, 0),  # due work waiting 10 minutes for a worker
    ("dead_letter_rate", 10, 2),  # more than 10 dead letters a minute, for 2 minutes
    ("terminal_offline", 15, 0),  # a till silent for 15 minutes
    ("terminal_no_sales", 60, 0),  # a heartbeating till with no sale for an hour of opening time
    ("reconciliation_drift", 0, 0),  # any open discrepancy in the latest run
    ("workers_gone", 5, 0),  # no worker has run the minute's sample for 5 minutes
]
PERMISSIONS = [
    ("incident", "view_incident", "Can view incident"),
    ("alertrule", "view_alertrule", "Can view alert rule"),
    ("alertrule", "change_alertrule", "Can change alert rule"),
]
VIEW = {"view_incident", "view_alertrule"}
GROUPS = {"Viewers": VIEW, "Support": VIEW, "Terminal admins": VIEW | {"change_alertrule"}}


def seed(apps, schema_editor):
    AlertRule = apps.get_model("reconciliation", "AlertRule")
    for kind, threshold, for_minutes in DEFAULT_RULES:
        AlertRule.objects.get_or_create(kind=kind, defaults={"threshold": threshold, "for_minutes": for_minutes})
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    perms = {}
    for model, codename, name in PERMISSIONS:
        ct, _ = ContentType.objects.get_or_create(app_label="reconciliation", model=model)
        perms[codename], _ = Permission.objects.get_or_create(
            content_type=ct, codename=codename, defaults={"name": name}
        )
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*(perms[c] for c in codenames))


def unseed(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    codenames = [c for _, c, _ in PERMISSIONS]
    for group in Group.objects.filter(name__in=list(GROUPS)):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="reconciliation", codename__in=codenames)
        )


class Migration(migrations.Migration):

    dependencies = [
        ('reconciliation', '0004_drop_future_dated_reports'),
        ('syncadmin', '0003_console_groups'),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('backlog_overdue', 'Backlog overdue'), ('dead_letter_rate', 'Dead letters per minute'), ('terminal_offline', 'Terminal offline'), ('terminal_no_sales', 'No sales while the store is open'), ('reconciliation_drift', 'Reconciliation drift'), ('workers_gone', 'Worker cluster gone')], max_length=32, unique=True)),
                ('enabled', models.BooleanField(default=True)),
                ('threshold', models.FloatField()),
                ('for_minutes', models.PositiveIntegerField(default=0)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('updated_by', models.CharField(blank=True, max_length=150)),
            ],
            options={
                'ordering': ['kind'],
            },
        ),
        migrations.CreateModel(
            name='Incident',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('subject', models.CharField(blank=True, max_length=64)),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('open', 'Open'), ('cleared', 'Cleared')], default='pending', max_length=16)),
                ('first_seen_at', models.DateTimeField()),
                ('opened_at', models.DateTimeField(blank=True, null=True)),
                ('ok_since', models.DateTimeField(blank=True, null=True)),
                ('cleared_at', models.DateTimeField(blank=True, null=True)),
                ('value', models.FloatField()),
                ('threshold', models.FloatField()),
                ('details', models.JSONField(blank=True, default=dict)),
                ('updated_at', models.DateTimeField()),
                ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='incidents', to='reconciliation.alertrule')),
            ],
            options={
                'ordering': ['-first_seen_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='AlertNotification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event', models.CharField(choices=[('opened', 'Opened'), ('cleared', 'Cleared')], max_length=16)),
                ('channel', models.CharField(choices=[('webhook', 'Webhook'), ('email', 'Email')], max_length=16)),
                ('target', models.CharField(max_length=500)),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('sent', 'Sent'), ('failed', 'Failed')], default='pending', max_length=16)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField()),
                ('last_error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField()),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('incident', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='reconciliation.incident')),
            ],
            options={
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.AddIndex(
            model_name='incident',
            index=models.Index(fields=['state', '-first_seen_at'], name='incident_state_idx'),
        ),
        migrations.AddConstraint(
            model_name='incident',
            constraint=models.UniqueConstraint(condition=models.Q(('state__in', ['pending', 'open'])), fields=('rule', 'subject'), name='incident_one_active'),
        ),
        migrations.AddIndex(
            model_name='alertnotification',
            index=models.Index(fields=['state', 'next_attempt_at'], name='alert_notification_due_idx'),
        ),
        migrations.AddConstraint(
            model_name='alertnotification',
            constraint=models.UniqueConstraint(fields=('incident', 'event', 'channel', 'target'), name='alert_notification_once'),
        ),
        migrations.RunPython(seed, unseed),
    ]
