"""``wandb.Artifact`` as scripts spell it, over :class:`gradexp.Artifact`.

The keywords wandb takes that mean nothing here (caching and storage policies,
``incremental``, ``use_as``, ``checksum``...) are accepted and ignored; everything else is
gradexp's own artifact (docs/migrating-from-wandb.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from gradexp.sdk.artifacts import Artifact as _Artifact

__all__ = ["Artifact"]


class Artifact(_Artifact):
    """``wandb.Artifact(name, type, description=None, metadata=None, ...)``."""

    def __init__(
        self,
        name: str,
        type: str,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        **_ignored: Any,
    ) -> None:
        super().__init__(name, type, description=description, metadata=metadata)

    def add_file(
        self,
        local_path: str | os.PathLike[str],
        name: str | None = None,
        policy: str = "mutable",
        **_ignored: Any,
    ) -> str:
        """``add_file(local_path, name=None, policy="mutable", is_tmp=..., overwrite=...)``."""
        return super().add_file(local_path, name, policy=policy)

    def add_dir(
        self, local_path: str | os.PathLike[str], name: str | None = None, **_ignored: Any
    ) -> list[str]:
        """``add_dir(local_path, name=None, policy=..., merge=...)``."""
        return super().add_dir(local_path, name)

    @contextmanager
    def new_file(
        self, name: str, mode: str = "x", encoding: str | None = None
    ) -> Iterator[IO[Any]]:
        """``new_file(name, mode="x", encoding=None)`` (wandb's default mode is ``"x"``)."""
        with super().new_file(name, mode=mode, encoding=encoding) as f:
            yield f

    def add_reference(self, uri: str, name: str | None = None, **_ignored: Any) -> str:
        """``add_reference(uri, name=None, checksum=..., max_objects=...)``."""
        return super().add_reference(uri, name)
