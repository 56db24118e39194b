"""Next steps for a source check, read from how PostgreSQL or the network failed."""

from __future__ import annotations

import pytest
from lakegate.edge.diagnosis import next_steps


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        ("password authentication failed for user 'reader'", "refused the stored password"),
        ('no pg_hba.conf entry for host "10.0.0.9", user "reader"', "pg_hba.conf entry"),
        ('database "shpo" does not exist', "The database name is wrong"),
        ('role "raeder" does not exist', "The user does not exist"),
        ('could not translate host name "db.intrnal" to address', "host name does not resolve"),
        ("connection refused at db.internal:5432", "could not reach the server"),
        ("permission denied for database shop", "GRANT CONNECT"),
        ("something nobody has seen before", "Check that the server is running"),
    ],
)
def test_each_known_failure_gets_its_own_first_step(error: str, advice: str) -> None:
    assert advice in next_steps("source_error", error, None)[0]


def test_a_working_source_is_told_so_and_warned_when_its_user_can_write() -> None:
    assert "list_source_tables" in next_steps(None, None, True)[0]
    assert "read-only grants" in next_steps(None, None, False)[0]


def test_an_unknown_source_and_a_stopped_service_point_at_the_right_remedy() -> None:
    assert "list_sources" in next_steps("not_found", "source src_x does not exist", None)[0]
    assert "make up" in next_steps("unavailable", "the extractor service is not running", None)[0]
