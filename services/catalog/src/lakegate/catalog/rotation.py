"""`rotate-keys`: encrypt every stored source secret again with the newest catalog key."""

from __future__ import annotations

from lakegate.catalog.cipher import cipher_from_settings
from lakegate.catalog.config import CatalogSettings
from lakegate.catalog.database import open_pool
from lakegate.catalog.sources import SourceStore


async def rotate_keys(settings: CatalogSettings) -> int:
    """Re-encrypt every source's secret with the first configured key; how many were rewritten.

    One transaction: either every row moves to the new key or none does. Afterwards the old keys
    can be removed from LAKEGATE_CATALOG_SECRET_KEY.
    """
    cipher = cipher_from_settings(settings)
    async with open_pool(settings.model_copy(update={"pool_min_size": 0, "pool_max_size": 1})) as pool:
        return await SourceStore(pool, cipher).rotate_keys()
