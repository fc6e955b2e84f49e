"""JSON log lines and the shipped migration files."""

from __future__ import annotations

import logging

import orjson

from services.api_service.db.migrate import available_migrations
from services.shared.logs import JsonFormatter


def test_log_lines_are_json_with_extra_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.request_id = "abc"
    line = orjson.loads(JsonFormatter("api").format(record))
    assert line["msg"] == "hello you" and line["request_id"] == "abc" and line["service"] == "api"


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in available_migrations()]
    assert versions == list(range(1, len(versions) + 1))
