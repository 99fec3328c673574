"""django-q2 task of the observability layer: thin wrapper around the sample services."""

from messages.services.sampling import metric_sample_write
from reconciliation.terminal_health import terminal_health_snapshot_write


def metrics_sample() -> int:
    """Scheduled every minute (SyncAdminConfig.schedules): the sample, then the terminals' health as of it."""
    sample = metric_sample_write()
    terminal_health_snapshot_write(now=sample.at)
    return sample.backlog
