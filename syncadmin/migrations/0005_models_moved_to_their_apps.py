# DeadLetterGroupNote now belongs to queue_messages (0007), TerminalHealthSnapshot to terminals
# (0003): they are removed from this app's state only. Their tables stay, with their rows.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("syncadmin", "0004_merge_console_observability"),
        ("queue_messages", "0007_deadlettergroupnote_from_syncadmin"),
        ("terminals", "0003_terminalhealthsnapshot_from_syncadmin"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="DeadLetterGroupNote"),
                migrations.DeleteModel(name="TerminalHealthSnapshot"),
            ],
            database_operations=[],
        ),
    ]
