"""Log lines: JSON with the run and tenant of the work, and never a secret."""

from __future__ import annotations

import json
import logging

from lakegate.common.logs import JsonFormatter, TextFormatter, log_context, redact


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("lakegate.test", logging.INFO, __file__, 1, message, args, None)


def test_a_json_line_names_the_run_and_tenant_of_the_work_being_done() -> None:
    with log_context(run_id="run_1", tenant_id="acme"):
        line = json.loads(JsonFormatter("loader").format(_record("loaded %d rows", 5)))

    assert line["message"] == "loaded 5 rows"
    assert (line["service"], line["run_id"], line["tenant_id"]) == ("loader", "run_1", "acme")
    assert "trace_id" not in line  # no span is current here


def test_outside_any_work_a_json_line_has_no_run_or_tenant() -> None:
    line = json.loads(JsonFormatter("catalog").format(_record("started")))

    assert "run_id" not in line
    assert "tenant_id" not in line


def test_passwords_tokens_and_dsn_credentials_are_masked_in_both_formats() -> None:
    message = "connect postgresql://reader:hunter2@db:5432/shop failed; password=hunter2 token: abc.def Bearer xyz123"

    for formatter in (JsonFormatter("extractor"), TextFormatter("extractor")):
        text = formatter.format(_record(message))
        assert "hunter2" not in text
        assert "abc.def" not in text
        assert "xyz123" not in text
        assert "postgresql://reader:***@db:5432/shop" in text


def test_text_without_secrets_is_left_as_it_is() -> None:
    text = "run run_1: extracted 300 rows of public.orders into tenant_acme.bronze.orders"

    assert redact(text) == text


def test_redacting_a_long_run_of_letters_reads_it_once_and_keeps_it() -> None:
    # A scheme of unbounded length made this quadratic: 30,000 letters took 26 s, a 100,000-letter table
    # name sent by a caller froze the service that logged it.
    text = "table name " + "x" * 300_000 + " is not valid"

    assert redact(text) == text
    assert redact("postgresql://bob:pw@db " + "x" * 300_000).startswith("postgresql://bob:***@db")
