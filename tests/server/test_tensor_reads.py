"""Tensor views and downloads hold a bounded amount of memory, whatever the tensor's size.

Each test starts its own server (SQLite and a local folder), so the server's peak memory
can be measured around one request (Linux: ``VmHWM``, reset through ``clear_refs``).
"""

from __future__ import annotations

import hashlib
import io
import sys
import urllib.request
import zlib

import numpy as np
import pytest

from .helpers import log_file, new_id, peak_kib, put_run, reset_peak

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for memory")

MiB = 1024 * 1024


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    """A version 1.0 ``.npy`` header for an array of ``shape``."""
    head = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    head += " " * ((64 - (10 + len(head) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head.encode()


def zeros_npy_gz(shape: tuple[int, ...], descr: str = "<f4", itemsize: int = 4) -> bytes:
    """A gzip'ed ``.npy`` of zeros, built without holding the array."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = [comp.compress(npy_header(shape, descr))]
    left = int(np.prod(shape)) * itemsize
    block = bytes(MiB)
    while left:
        n = min(left, MiB)
        out.append(comp.compress(block[:n]))
        left -= n
    out.append(comp.flush())
    return b"".join(out)


@pytest.fixture
def tensor_server(start_server):
    srv = start_server()
    run_id = new_id()
    assert put_run(srv, run_id)[0] == 201
    return srv, run_id


def test_a_compressed_tensor_downloads_streamed(tensor_server):
    srv, run_id = tensor_server
    data = zeros_npy_gz((96, MiB // 4))  # 96 MiB of float32 zeros in ~100 KiB
    log_file(srv, run_id, 1, "z.npy.gz", data)
    before = reset_peak(srv)
    url = f"{srv.url}/api/v1/runs/{run_id}/tensor.npy?path=z.npy.gz"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {srv.api_key}"})
    digest, total = hashlib.sha256(), 0
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == 96 * MiB + 128
        head = resp.read(128)
        while chunk := resp.read(MiB):
            digest.update(chunk)
            total += len(chunk)
    assert np.lib.format.read_array_header_1_0(io.BytesIO(head[8:]))[0] == (96, MiB // 4)
    assert total == 96 * MiB and digest.hexdigest() == hashlib.sha256(bytes(96 * MiB)).hexdigest()
    # The whole file was never held: the server's peak grew by far less than its 96 MiB.
    assert peak_kib(srv) - before < 40 * 1024


def test_a_large_compressed_tensor_is_sliced_as_it_streams(tensor_server):
    srv, run_id = tensor_server
    # 96 MiB of float32 in ~100 KiB: a 3-D tensor, too large to keep, read for each slice.
    log_file(srv, run_id, 1, "z.npy.gz", zeros_npy_gz((24, 1024, 1024)))
    before = reset_peak(srv)
    for index in ("23,:,:", ":,5,:", "0,0,:"):
        status, body = srv.request(
            "GET", f"/api/v1/runs/{run_id}/tensor?path=z.npy.gz&index={index}&max=100"
        )
        assert status == 200, body
        assert body["shape"] == [24, 1024, 1024]
        assert body["values"] and set(body["values"]) == {0.0}
        assert body["min"] == body["max"] == 0.0
    assert body["rows"] == 1 and body["cols"] == 94 and body["stride"] == [1, 11]
    # Never the whole tensor in memory: a slice and a chunk at a time.
    assert peak_kib(srv) - before < 40 * 1024


def test_an_uncompressed_tensor_is_sliced_without_reading_it_whole(tensor_server):
    srv, run_id = tensor_server
    rng = np.random.default_rng(1)
    arr = np.zeros((24, 1024, 1024), dtype=np.float32)  # 96 MiB
    arr[5] = rng.standard_normal((1024, 1024), dtype=np.float32)
    buf = io.BytesIO()
    np.save(buf, arr)
    log_file(srv, run_id, 1, "t.npy", buf.getvalue())
    del buf
    before = reset_peak(srv)
    status, body = srv.request("GET", f"/api/v1/runs/{run_id}/tensor?path=t.npy&index=5,:,:&max=64")
    assert status == 200, body
    assert body["shape"] == [24, 1024, 1024] and body["stride"] == [16, 16]
    expected = arr[5, ::16, ::16].astype(np.float64).ravel()
    assert np.allclose(body["values"], expected)
    assert peak_kib(srv) - before < 40 * 1024


def test_headers_that_lie_are_refused_and_large_views_are_413(tensor_server):
    srv, run_id = tensor_server
    # A compressed tensor past the 512 MiB a view may hold: 413 before it is inflated.
    log_file(srv, run_id, 1, "big.npy.gz", zeros_npy_gz((520, MiB // 4)))
    before = reset_peak(srv)
    status, body = srv.request("GET", f"/api/v1/runs/{run_id}/tensor?path=big.npy.gz")
    assert status == 413 and "download its .npy" in body["error"]["message"], body
    assert peak_kib(srv) - before < 40 * 1024
    # Headers claiming 8 TiB over a few bytes, compressed or not: 422, nothing read.
    lie = npy_header((1 << 40,)) + bytes(64)
    log_file(srv, run_id, 2, "lie.npy", lie)
    log_file(srv, run_id, 3, "lie.npy.gz", zlib.compress(lie, wbits=31))
    for path in ("lie.npy", "lie.npy.gz"):
        for view in ("tensor", "tensor.npy"):
            status, body = srv.request("GET", f"/api/v1/runs/{run_id}/{view}?path={path}")
            assert status == 422, (path, view, body)
            assert "8.0 TiB" in body["error"]["message"], body
    # Something that is no .npy at all.
    log_file(srv, run_id, 4, "junk.npy", b"\x93NUMPY\x01\x00\xff\xff not a header")
    status, body = srv.request("GET", f"/api/v1/runs/{run_id}/tensor?path=junk.npy")
    assert status == 422, body
