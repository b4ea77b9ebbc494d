"""``gradexp.Tensor``: a whole tensor kept as a ``.npy`` file in the run's files."""

from __future__ import annotations

import gzip
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from gradexp.sdk.values.base import CapturingValue, HostArray, Memo, as_numpy, torch_of
from gradexp.sdk.values.binning import statistics

if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink

__all__ = ["Tensor", "TensorValue"]

# gzip level for Tensor(compress=True): float data gains little past level 1, and the
# stream thread pays the time. mtime=0 keeps equal tensors byte-identical (one blob).
GZIP_LEVEL = 1


class TensorValue:
    """``Tensor``'s captured form: a host copy, written as ``.npy`` on the stream thread."""

    __slots__ = ("_compress", "_host", "_memo", "nbytes")

    def __init__(self, host: HostArray, compress: bool) -> None:
        self._host = host
        self._compress = compress
        self._memo = Memo()
        self.nbytes = host.nbytes

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        if sink is None:
            raise ValueError("a Tensor needs a run to store its file in")
        return self._memo.get(lambda: self._write(sink))

    def _write(self, sink: BlobSink) -> dict[str, Any]:
        host = self._host
        array = host.get().reshape(host.shape)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        data = buf.getvalue()
        if self._compress:
            data = gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
            ref = sink.add_file(data, suffix=".npy.gz", content_type="application/gzip")
        else:
            ref = sink.add_file(data, suffix=".npy", content_type="application/octet-stream")
        stats = statistics(array)
        host.release()
        return {
            "_type": "tensor",
            "path": ref["path"],
            "sha256": ref["sha256"],
            "size": ref["size"],
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "compressed": bool(self._compress),
            **stats,
        }


class Tensor(CapturingValue[TensorValue]):
    """A whole tensor kept as a file: ``gradexp.log({"attn": gradexp.Tensor(a)})``.

    The array (numpy, or a torch tensor on any device) is copied when the Tensor is made
    and written on the stream thread as a ``.npy`` file (``.npy.gz``, gzip, when
    ``compress=True``) in the run's ``files/``, uploaded by content hash and referenced
    from the history row with its shape, dtype and statistics. torch dtypes numpy lacks
    (bfloat16, float8) are stored as float32, which holds them exactly.
    """

    __slots__ = ()

    def __init__(self, value: Any, *, compress: bool = True) -> None:
        def make() -> TensorValue:
            torch = torch_of(value)
            if torch is not None:
                dense = value.to_dense() if value.layout != torch.strided else value
                return TensorValue(HostArray.of_torch(torch, dense), bool(compress))
            return TensorValue(HostArray.of_numpy(as_numpy(value)), bool(compress))

        # A RuntimeError: out of memory copying off the device, say.
        self._capture(make, failure="could not copy the tensor")

    def _describe(self) -> str:
        assert self._captured is not None
        return f" shape={self._captured._host.shape}"
