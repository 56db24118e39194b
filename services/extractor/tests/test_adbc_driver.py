"""The ADBC driver library the extractor streams tables with (`LAKEGATE_EXTRACTOR_ADBC_DRIVER`)."""

from __future__ import annotations

from pathlib import Path

import adbc_driver_postgresql
import asyncpg
import pydantic
import pytest
from lakegate.common.contracts.runs import Extracted
from lakegate.common.settings import NatsSettings
from lakegate.extractor.config import ExtractorSettings

from .conftest import FakeCatalog, harness_settings, login_for


@pytest.fixture
def settings(nats_settings: NatsSettings) -> ExtractorSettings:
    """An extractor told to load the driver library by its path (here the wheel's own, found by path)."""
    return harness_settings(
        nats_settings,
        adbc_driver=Path(adbc_driver_postgresql._driver_path()),
    )


async def test_an_extractor_given_a_driver_library_streams_the_table_through_it(
    catalog: FakeCatalog, source: asyncpg.Connection, source_dsn: str
) -> None:
    await source.execute(
        "CREATE TABLE parcels AS SELECT g::bigint AS id, md5(g::text)::uuid AS ref, (g / 4.0)::numeric(8,2) AS cost "
        "FROM generate_series(1, 500) g"
    )
    connection_id = catalog.add_source(login_for(source_dsn))

    outcome = await catalog.extract(connection_id, "parcels")

    assert isinstance(outcome, Extracted), outcome
    table = await catalog.staged_table(outcome)
    assert table.num_rows == 500
    first = table.sort_by("id").slice(0, 1).to_pylist()[0]
    assert first["ref"] == await source.fetchval("SELECT ref::text FROM parcels WHERE id = 1")
    assert str(first["cost"]) == "0.25"


def test_a_driver_setting_that_names_no_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="LAKEGATE_EXTRACTOR_ADBC_DRIVER"):
        ExtractorSettings(adbc_driver=tmp_path / "libadbc_driver_postgresql.so")
