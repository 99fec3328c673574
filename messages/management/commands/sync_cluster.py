"""Start a worker cluster: django-q2's ``qcluster``, whose sentinel also looks at the due index itself."""

from django_q import cluster as q_cluster
from django_q.management.commands.qcluster import Command as QclusterCommand

from messages.cluster import DueCheckingSentinel


class Command(QclusterCommand):
    help = (
        "Start a django-q2 worker cluster that also finds due messages itself, every SYNC_DUE_CHECK_SECONDS, "
        "with no task through the broker (what the worker unit and `serve` run)."
    )

    def handle(self, *args, **options):
        # django-q2's Cluster starts the sentinel class its module names. This process exists only
        # to run the cluster, so naming ours there is all it takes (the rest is django-q2's own code).
        q_cluster.Sentinel = DueCheckingSentinel
        super().handle(*args, **options)
