# Throttled bulk jobs that can be paused (issue 20): a job's rate, its Paused state and who paused
# it. Nullable or with a database default, so code still running during the upgrade keeps
# inserting jobs; the state's new choice changes no SQL.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('queue_messages', '0011_saved_views'),
    ]

    operations = [
        migrations.AddField(
            model_name='bulkjob',
            name='pause_reason',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AddField(
            model_name='bulkjob',
            name='paused_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='bulkjob',
            name='paused_by',
            field=models.CharField(blank=True, db_default='', default='', max_length=150),
        ),
        migrations.AddField(
            model_name='bulkjob',
            name='paused_seconds',
            field=models.FloatField(db_default=0.0, default=0.0),
        ),
        migrations.AddField(
            model_name='bulkjob',
            name='rate',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='bulkjob',
            name='state',
            field=models.CharField(choices=[('Pending', 'Pending'), ('Running', 'Running'), ('Paused', 'Paused'), ('Done', 'Done'), ('Cancelled', 'Cancelled'), ('Failed', 'Failed')], default='Pending', max_length=16),
        ),
    ]
