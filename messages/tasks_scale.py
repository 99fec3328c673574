"""Deprecated: the old dotted paths of the retention and bulk-job tasks, now in messages/tasks.py.

django-q2 stores a task's dotted path in the database: in each Schedule (rewritten by migration
queue_messages 0008) and in every task queued before an upgrade. Those queued tasks still run
through these names. Kept for one release; remove in the next.
"""

from messages.tasks import bulk_job_run, bulk_jobs_resume, purge

__all__ = ["bulk_job_run", "bulk_jobs_resume", "purge"]
