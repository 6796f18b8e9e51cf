"""Pure helpers: ids, durations, error registry, JSON logs."""

from __future__ import annotations

import json
import logging

import pytest

from core.durations import parse_duration
from core.errors import REGISTRY, AppError
from core.ids import new_id, ulid
from core.logging import JsonFormatter, request_id_var


def test_ids_are_prefixed_and_sortable():
    a, b = new_id("pol"), new_id("pol")
    assert a.startswith("pol_") and len(a) == 30 and a != b
    ids = [ulid() for _ in range(50)]
    assert len(set(ids)) == 50


@pytest.mark.parametrize(("text", "seconds"), [("90d", 7776000), ("48h", 172800), ("15m", 900), ("30s", 30),
                                               ("2w", 1209600), (60, 60)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "10", "1y", "-5d", "d", "5 days", -1])
def test_bad_durations_are_invalid_duration(bad):
    with pytest.raises(AppError) as e:
        parse_duration(bad)
    assert e.value.code == "invalid_duration" and e.value.status == 400


def test_registry_statuses_follow_the_spec():
    assert REGISTRY["secret_exists"].status == 409 and REGISTRY["version_conflict"].retry == "rarely"
    assert REGISTRY["rate_limited"].status == 429 and REGISTRY["tenant_not_found"].status == 404
    with pytest.raises(KeyError):
        AppError("made_up_code", "x")


def test_json_logs_carry_the_request_id():
    token = request_id_var.set("req_abc")
    try:
        rec = logging.LogRecord("t", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        rec.path = "/v1/x"
        out = json.loads(JsonFormatter().format(rec))
    finally:
        request_id_var.reset(token)
    assert out["msg"] == "hello world" and out["request_id"] == "req_abc" and out["path"] == "/v1/x"
