"""deploy/prometheus/alerts.yml and deploy/grafana/syncadmin.json name only metrics the hub's /metrics exports."""

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "syncadmin.json"
TOKEN = "prometheus-grafana-test-token"
# A metric name in PromQL: the project's all begin syncadmin_ (a label value inside quotes is skipped).
METRIC = re.compile(r"(?<![\w:\"'])(syncadmin_[a-zA-Z0-9_:]*)")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    return [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for t in panel.get("targets", [])]


def metric_names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC.findall(re.sub(r'"[^"]*"', '""', expr))}


@pytest.fixture
def exported(client, settings, db):
    """Every series name a scrape of /metrics can show: each family with its type's suffixes."""
    settings.SYNC_METRICS_TOKEN, settings.SYNC_METRICS_ALLOWED_IPS = TOKEN, []
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    assert "syncadmin_backlog_overdue_seconds" in names  # the scrape did read the families
    return names


def test_both_files_use_metrics_at_all():
    assert len(metric_names(rule_expressions())) >= 8
    assert len(metric_names(dashboard_expressions())) >= 10


@pytest.mark.parametrize("source", ["alerts.yml", "syncadmin.json"])
def test_every_metric_they_name_exists(exported, source):
    expressions = rule_expressions() if source == "alerts.yml" else dashboard_expressions()
    assert sorted(metric_names(expressions) - exported) == []


def test_a_misspelt_metric_is_caught(exported):
    expressions = ["sum(rate(syncadmin_dead_leters_total[5m])) > 1", 'syncadmin_terminals{status="offline"} > 0']
    assert metric_names(expressions) - exported == {"syncadmin_dead_leters_total"}


def test_every_alert_has_a_summary_and_a_severity():
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["summary"] and rule["labels"]["severity"] in ("warning", "critical"), rule
