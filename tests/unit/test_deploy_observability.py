"""deploy/grafana/scaivault.json passes a JSON-schema check of Grafana's dashboard model, and every metric a
panel or a Prometheus alert rule (deploy/prometheus/alerts.yml) queries is one the code exports."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import jsonschema
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "scaivault.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRIC_MODULES = ["core.metrics", "services.job_metrics", "services.pki.metrics", "services.rotation.metrics",
                  "services.dynamic.metrics"]
_NAME = re.compile(r"\b((?:scaivault|worker_scheduler)_[a-z0-9_]+)\b")

_DATASOURCE = {"type": "object", "required": ["type", "uid"],
               "properties": {"type": {"const": "prometheus"}, "uid": {"type": "string"}}}
_GRID = {"type": "object", "required": ["x", "y", "w", "h"], "additionalProperties": False,
         "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 23},
                        "y": {"type": "integer", "minimum": 0},
                        "w": {"type": "integer", "minimum": 1, "maximum": 24},
                        "h": {"type": "integer", "minimum": 1}}}
_TARGET = {"type": "object", "required": ["refId", "expr"],
           "properties": {"refId": {"type": "string", "pattern": "^[A-Z]$"}, "expr": {"type": "string", "minLength": 1},
                          "legendFormat": {"type": "string"}, "datasource": _DATASOURCE}}
# The subset of Grafana's dashboard JSON model (schemaVersion 39) this dashboard uses, strictly.
SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "time", "templating"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "version": {"type": "integer"},
        "refresh": {"type": "string"},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {"type": "object", "required": ["list"],
                       "properties": {"list": {"type": "array", "items": {
                           "type": "object", "required": ["name", "type"]}}}},
        "panels": {"type": "array", "minItems": 1, "items": {"oneOf": [
            {"type": "object", "required": ["id", "type", "title", "gridPos", "panels", "collapsed"],
             "properties": {"id": {"type": "integer"}, "type": {"const": "row"}, "title": {"type": "string"},
                            "gridPos": _GRID, "collapsed": {"type": "boolean"}, "panels": {"type": "array"}}},
            {"type": "object", "required": ["id", "type", "title", "gridPos", "targets", "datasource"],
             "properties": {"id": {"type": "integer"},
                            "type": {"enum": ["timeseries", "stat", "gauge", "table", "bargauge"]},
                            "title": {"type": "string", "minLength": 1}, "gridPos": _GRID,
                            "datasource": _DATASOURCE,
                            "targets": {"type": "array", "minItems": 1, "items": _TARGET}}},
        ]}},
    },
}


def exported_names() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):  # every registered metric family, labelled or not
        for family in collector.describe() if hasattr(collector, "describe") else []:
            base = family.name
            kind = family.type
            names.add(base)
            if kind == "counter":
                names.update({base + "_total", base + "_created"})
            elif kind == "histogram":
                names.update({base + "_bucket", base + "_count", base + "_sum", base + "_created"})
    return names


def test_dashboard_matches_the_schema_and_has_unique_ids_and_no_overlap():
    dash = json.loads(DASHBOARD.read_text())
    jsonschema.validate(dash, SCHEMA)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine


def test_dashboard_queries_only_exported_metrics():
    names = exported_names()
    dash = json.loads(DASHBOARD.read_text())
    used = {m for p in dash["panels"] for t in p.get("targets", []) for m in _NAME.findall(t["expr"])}
    assert used, "the dashboard queries no ScaiVault metric"
    assert used - names == set(), f"unknown metrics: {sorted(used - names)}"
    # the job and queue panels the issue asks for are there
    assert {"worker_scheduler_runs_total", "worker_scheduler_run_duration_seconds_bucket", "scaivault_queue_depth",
            "scaivault_audit_write_failures_total", "scaivault_jwks_refreshes_total"} <= used


def test_alert_rules_are_well_formed_and_reference_exported_metrics():
    names = exported_names()
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    alerts = {r["alert"] for r in rules}
    assert {"ScaiVaultAuditUnavailable", "ScaiVaultOutboxBacklogGrowing", "ScaiVaultRenewalFailing",
            "ScaiVaultRevocationFailing", "ScaiVaultIdentitySyncStale", "ScaiVaultJwksErrors"} <= alerts
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning") and r["annotations"]["summary"]
        used = set(_NAME.findall(r["expr"]))
        assert used and used - names == set(), (r["alert"], sorted(used - names))
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]
    # the job-based alerts name activity types that exist
    from pathlib import Path as P
    activities = set(re.findall(r'activity\.defn\(name="([^"]+)"\)',
                                "".join(p.read_text() for p in (ROOT / "activities").glob("*.py"))))
    for needed in ("acme.renewal_order", "leases.revoke_due", "leases.retry", "identity.run_sync"):
        assert needed in activities, needed
    assert P(ALERTS).exists()
