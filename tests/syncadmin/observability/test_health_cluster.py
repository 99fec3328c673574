"""/healthz follows a real `manage.py qcluster`: healthy while it runs, unhealthy once it stops,
healthy again when it comes back."""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from django_q.models import Schedule

from syncadmin.lib.schedules import ensure_schedules
from syncadmin.models import MetricSample
from syncadmin.observability.health import cluster_stats_visible
from tests.processes import postgres_url, start_qcluster, stop

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
TOKEN = "health-detail-token"


@pytest.fixture
def cluster_env(tmp_path, settings):
    settings.SYNC_HEALTHZ_WORKER_STALE_SECONDS = 90  # > the sample's one-minute interval
    settings.SYNC_METRICS_TOKEN = TOKEN  # /healthz shows its detail to the metrics token
    return {
        **os.environ,
        "DATABASE_URL": postgres_url(),
        # the same broker and cluster name as this process, so /healthz here sees its statistics
        "Q_BROKER": settings.Q_BROKER,
        "Q_CLUSTER_NAME": settings.Q_CLUSTER["name"],
        # django-q2 signs its cluster statistics with the secret key: the same one, as in production
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "SYNC_WORKERS": "1",
        "SYNC_VAR_DIR": str(tmp_path),
        "LOG_FORMAT": "plain",
    }


def wait_for_status(client, status, timeout):
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def test_healthz_follows_the_worker_cluster(client, cluster_env, tmp_path):
    ensure_schedules()
    assert client.get("/healthz").status_code == 503  # no cluster has ever run
    log = open(tmp_path / "cluster.log", "w")
    cluster = start_qcluster(cluster_env, log)
    try:
        # the scheduler's first pass (about 30 s after start) runs the due sample task
        response = wait_for_status(client, 200, 75)
        assert response.status_code == 200, (response.json(), (tmp_path / "cluster.log").read_text()[-1500:])
        assert MetricSample.objects.exists()

        stop(cluster)
        if not cluster_stats_visible():
            # ORM broker with a local cache: only the heartbeat's age tells; let it grow stale
            MetricSample.objects.update(at=datetime.now(UTC) - timedelta(seconds=91))
        response = wait_for_status(client, 503, 30)
        assert response.status_code == 503
        assert not response.json()["checks"]["workers"]["ok"]

        # it comes back; its next sample is due (as it would be a minute later)
        Schedule.objects.filter(name="syncadmin-metrics-sample").update(next_run=datetime.now(UTC))
        cluster = start_qcluster(cluster_env, log)
        response = wait_for_status(client, 200, 75)
        assert response.status_code == 200, (response.json(), (tmp_path / "cluster.log").read_text()[-1500:])
    finally:
        stop(cluster)
        log.close()
