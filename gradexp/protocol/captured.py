"""How a rich value plugs into the stream: the :class:`Captured` and :class:`BlobSink`
protocols.

A rich value (a histogram, a tensor, an image ...) is *captured* on the caller's thread
at ``log()`` time and *finished* on the stream thread, which hands it a sink for the bytes
of its blobs. The SDK's values (``gradexp.sdk.values``) implement ``Captured``; the
stream's ``RunStream`` implements ``BlobSink``. Neither side imports the other.

(Apart from ``gradexp.protocol.values`` because these need ``typing`` at run time, which
``init()`` does not load.)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["BlobSink", "Captured"]


@runtime_checkable
class Captured(Protocol):
    """Taken from the caller at ``log()`` time; finished on the stream thread.

    ``nbytes`` counts against the stream's memory bound while the value waits in the
    queue. ``encode`` runs on the stream thread and returns the JSON-ready typed value
    (protocol "Values"), e.g. ``{"_type": "histogram", ...}``; it may call
    ``sink.add_file`` to store a blob. It may raise ``TypeError``/``ValueError``: the value
    is then dropped, warned about once per key and counted, like any bad value.
    """

    nbytes: int

    def encode(self, sink: BlobSink) -> Any: ...


class BlobSink(Protocol):
    """Where :meth:`Captured.encode` puts the bytes of a blob (a tensor, an image).

    ``add_file`` writes ``data`` into the run's ``files/`` dir named by its sha256 (plus
    ``suffix``, e.g. ``".npy.gz"``), appends a ``file`` record (protocol "Records"),
    arranges for the blob to be uploaded before that record is sent, and returns
    ``{"path": ..., "sha256": ..., "size": ...}`` for the typed value to reference.
    Called on the stream thread only.
    """

    def add_file(self, data: bytes, *, suffix: str, content_type: str) -> dict[str, Any]: ...
