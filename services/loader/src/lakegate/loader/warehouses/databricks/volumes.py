"""Files in a Unity Catalog Volume: where a run's Parquet parts wait for `COPY INTO`.

`VolumeFiles` is the interface; `FilesApiVolume` implements it with the Databricks Files API
(`PUT /api/2.0/fs/files/Volumes/...`, through the SDK, so every credential the SDK knows works).
Each part is one request: parts are kept under the SDK's multipart threshold. Calls block; run them
in a worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable, Iterator
from typing import Protocol

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors.base import DatabricksError
from databricks.sdk.errors.platform import NotFound, PermissionDenied, ResourceDoesNotExist
from databricks.sdk.service.files import FilesAPI
from lakegate.common import errors
from lakegate.loader.warehouses.databricks.errors import GRANTS_HINT


class VolumeFiles(Protocol):
    def put(self, path: str, data: bytes) -> None:
        """Write (or overwrite) one file."""
        ...

    def remove_tree(self, path: str) -> None:
        """Remove a directory and every file under it; a missing directory is fine."""
        ...


class FilesApiVolume:
    """Volume files through the Files API of one workspace (the client is made on first use)."""

    def __init__(self, client: Callable[[], WorkspaceClient]) -> None:
        self._client = client

    @functools.cached_property
    def _files(self) -> FilesAPI:
        return FilesAPI(self._client().api_client)  # type: ignore[no-untyped-call]

    def put(self, path: str, data: bytes) -> None:
        """Upload one file in a single request, replacing any file of that name."""
        with _translated(f"uploading {path}"):
            self._files.upload(path, io.BytesIO(data), overwrite=True)

    def remove_tree(self, path: str) -> None:
        """Delete the files under `path`, then the directories, deepest first."""
        with _translated(f"removing {path}"):
            try:
                entries = list(self._files.list_directory_contents(path))
            except (NotFound, ResourceDoesNotExist):
                return
            for entry in entries:
                if entry.path is None:
                    continue
                if entry.is_directory:
                    self.remove_tree(entry.path)
                else:
                    self._files.delete(entry.path)
            self._files.delete_directory(path)


@contextlib.contextmanager
def _translated(doing: str) -> Iterator[None]:
    """Files API errors as lakegate's: refused access is terminal, the rest may pass."""
    try:
        yield
    except errors.LakegateError:
        raise
    except PermissionDenied as exc:
        raise errors.PermissionDenied(f"Databricks refused {doing}: {exc}; {GRANTS_HINT}") from exc
    except (NotFound, ResourceDoesNotExist) as exc:
        raise errors.NotFound(
            f"Databricks refused {doing}: {exc}; the staging Volume is created on first use, so check that the "
            "principal may CREATE VOLUME in the tenant's staging schema"
        ) from exc
    except (DatabricksError, OSError) as exc:
        raise errors.Unavailable(f"Databricks did not complete {doing}: {exc}; retrying") from exc
