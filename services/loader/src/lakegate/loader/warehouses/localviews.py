"""Gold views of the local lakehouse: one JSON file per view under `<catalog>/gold/_views/`.

A view file holds its definition in Databricks SQL with every table written in full, the tables it
reads, and when it was defined. Files are written to a temporary name and renamed into place, so a
reader sees the old definition or the new one, never half of one. The definition is checked by the
guard again every time it is used, so an edited file cannot reach outside its catalog.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from lakegate.common.contracts.runs import TableRef
from lakegate.common.errors import WarehouseError
from lakegate.loader.tablenames import check_ref
from pydantic import BaseModel, ConfigDict, ValidationError

VIEWS_DIRECTORY = "_views"


class ViewFile(BaseModel):
    """The stored form of one gold view."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = 1
    name: str
    sql: str
    upstream: list[TableRef]
    defined_at: dt.datetime


class ViewStore:
    """Reads and writes view files under a lakehouse root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, catalog: str) -> Path:
        return self.root / catalog / "gold" / VIEWS_DIRECTORY

    def path(self, ref: TableRef) -> Path:
        """Where the view's file is (whether or not it exists)."""
        check_ref(ref)
        return self.directory(ref.catalog) / f"{ref.name}.json"

    def names(self, catalog: str) -> list[str]:
        """The views of a catalog, sorted."""
        directory = self.directory(catalog)
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.json"))

    def read(self, ref: TableRef) -> ViewFile | None:
        """The view's file, or None when `ref` is no view."""
        if ref.schema_name != "gold":
            return None
        path = self.path(ref)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return ViewFile.model_validate_json(text)
        except ValidationError as exc:
            raise WarehouseError(
                f"the definition of view {ref} is damaged ({path.name}); create the view again"
            ) from exc

    def write(self, ref: TableRef, view: ViewFile) -> None:
        """Store a view's definition atomically (temporary file, fsync, rename)."""
        path = self.path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{ref.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(view.model_dump_json(indent=2))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
