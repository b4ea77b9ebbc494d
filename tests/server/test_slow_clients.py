"""Clients that send slowly or too much cannot hold the server: a request head or body that
dribbles in is cut off by the read deadline (``GRADEXP_SERVER_READ_TIMEOUT``), and forms and
the small JSON APIs are refused past 64 KiB (413) before their body is read.

Driven with raw sockets, byte by byte, against a real server."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.server.helpers import put_run

READ_TIMEOUT = 2  # the server's bound in these tests (default 30)
PATIENCE = 40.0  # how long a test keeps dribbling before it calls the connection "held"


@pytest.fixture
def strict_server(start_server: Any) -> Any:
    """A server with a short read deadline."""
    return start_server(env={"GRADEXP_SERVER_READ_TIMEOUT": str(READ_TIMEOUT)})


def _connect(srv: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.settimeout(0.25)
    return sock


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (what it sent before is skipped)."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:  # reset
        return True


def _dribble(sock: socket.socket, next_bytes: Callable[[], bytes]) -> float | None:
    """Send a few bytes every 0.25 s until the server closes the connection; the seconds
    that took, or None if it was still open after PATIENCE seconds."""
    started = time.monotonic()
    while time.monotonic() - started < PATIENCE:
        if _closed(sock):
            return time.monotonic() - started
        try:
            sock.sendall(next_bytes())
        except OSError:
            return time.monotonic() - started
    return None


def _head(srv: Any, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(sock: socket.socket, deadline: float = 20.0) -> int | None:
    """The status of the reply on this socket, or None if none came within ``deadline``."""
    sock.settimeout(deadline)
    try:
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, OSError):
        return None
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


@pytest.mark.slow
def test_a_request_head_that_dribbles_in_is_cut_off(strict_server: Any) -> None:
    sock = _connect(strict_server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    took = _dribble(sock, lambda: b"a")  # one header's value, a byte at a time
    sock.close()
    assert took is not None, f"a dribbled request head held its connection for {PATIENCE} s"
    # The server is fine for everyone else.
    assert strict_server.request("GET", "/api/v1/viewer")[0] == 200


@pytest.mark.slow
@pytest.mark.parametrize("route", ["form", "ingest", "blob"])
def test_a_body_that_dribbles_in_is_cut_off(strict_server: Any, route: str) -> None:
    if route == "form":  # anonymous: the sign-in form
        head = _head(
            strict_server,
            "POST",
            "/login",
            {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "4000"},
        )
    elif route == "blob":  # a large file, streamed into the object store as it arrives
        assert put_run(strict_server, "r-slow-blob")[0] == 201
        head = _head(
            strict_server,
            "PUT",
            "/api/v1/runs/r-slow-blob/blobs/" + "ab" * 32,
            {
                "Authorization": f"Bearer {strict_server.api_key}",
                "Content-Length": str(20 * 1024 * 1024),
            },
        )
    else:  # signed: a batch of records
        head = _head(
            strict_server,
            "POST",
            "/api/v1/runs/r-slow-body/records",
            {
                "Authorization": f"Bearer {strict_server.api_key}",
                "Content-Type": "application/json",
                "Content-Length": "100000",
            },
        )
    sock = _connect(strict_server)
    sock.sendall(head)
    took = _dribble(sock, lambda: b"a")
    sock.close()
    assert took is not None, f"a dribbled body held its connection for {PATIENCE} s"
    log = strict_server.log_tail()
    assert "arrived too slowly" in log and "Traceback" not in log
    assert strict_server.request("GET", "/api/v1/viewer")[0] == 200


@pytest.mark.slow
def test_a_large_form_is_refused_before_its_body_is_read(strict_server: Any) -> None:
    sock = socket.create_connection(("127.0.0.1", strict_server.port), timeout=10)
    head = _head(
        strict_server,
        "POST",
        "/login",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(30 * 1024 * 1024),
        },
    )
    sock.sendall(head + b"username=a&password=")  # and not one byte more
    assert _status(sock) == 413
    sock.close()


def test_a_chunked_form_is_cut_off_at_64_kib(strict_server: Any) -> None:
    sock = socket.create_connection(("127.0.0.1", strict_server.port), timeout=10)
    head = _head(
        strict_server,
        "POST",
        "/login",
        {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"},
    )
    chunk = b"password=" + b"x" * (100 * 1024)
    sock.sendall(head + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n")
    assert _status(sock) == 413
    sock.close()


def test_the_keys_api_takes_small_bodies_only(strict_server: Any) -> None:
    big = json.dumps({"name": "k", "padding": "x" * (100 * 1024)}).encode()
    status, body = strict_server.request(
        "POST", "/api/v1/api-keys", raw=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413 and "64 KiB" in body["error"]["message"]
    status, _ = strict_server.request("POST", "/api/v1/api-keys", {"name": "small"})
    assert status == 201
