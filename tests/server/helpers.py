"""Small helpers for the server tests: build records and batches, send them."""

from __future__ import annotations

import gzip
import hashlib
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from tests.helpers import run_async as run_async  # re-exported for the server tests
from tests.helpers import server_rows

GZIP = {"Content-Encoding": "gzip", "Content-Type": "application/json"}


def new_id(prefix: str = "r") -> str:
    """A fresh run id (the shared server lives for the whole session)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def history(seq: int, step: int, values: dict[str, Any], t: float | None = None) -> dict[str, Any]:
    """One history record."""
    return {
        "seq": seq,
        "type": "history",
        "step": step,
        "time": t if t is not None else 1.7e9 + step,
        "values": values,
    }


def batch(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch body for records with consecutive ``seq``."""
    return {"first_seq": records[0]["seq"], "last_seq": records[-1]["seq"], "records": records}


def steps_batch(
    first_seq: int, n: int, first_step: int | None = None, **const: float
) -> dict[str, Any]:
    """``n`` history records of ``loss`` (and constants) from ``first_seq``."""
    step0 = first_seq - 1 if first_step is None else first_step
    return batch(
        [
            history(first_seq + i, step0 + i, {"loss": 1.0 / (step0 + i + 1), **const})
            for i in range(n)
        ]
    )


def gz(doc: Any) -> bytes:
    """gzip'ed JSON."""
    return gzip.compress(json.dumps(doc).encode())


def put_run(
    srv: Any, run_id: str, project: str = "proj", key: str | None = None, **fields: Any
) -> tuple[int, Any]:
    """Create (or resume) a run."""
    body = {"project": project, "attempt": fields.pop("attempt", "a1"), **fields}
    return srv.request("PUT", f"/api/v1/runs/{run_id}", body, key=key)  # type: ignore[no-any-return]


def post_reply(srv: Any, run_id: str, doc: Any, key: str | None = None) -> tuple[int, Any]:
    """POST a batch (gzip'ed): the reply as sent."""
    return srv.request("POST", f"/api/v1/runs/{run_id}/records", raw=gz(doc), headers=GZIP, key=key)  # type: ignore[no-any-return]


def post(srv: Any, run_id: str, doc: Any, key: str | None = None) -> tuple[int, Any]:
    """POST a batch (gzip'ed): the reply without its pacing fields (``watched``,
    ``batch_interval``: see test_pacing.py), which are checked for their types here."""
    status, body = post_reply(srv, run_id, doc, key)
    if status == 200 and isinstance(body, dict):
        assert type(body.pop("watched")) is bool
        assert isinstance(body.pop("batch_interval"), (int, float))
    return status, body


rows = server_rows  # every history row of a run: the server tests' short name for it


def get(srv: Any, path: str, key: str | None = None) -> Any:
    """GET that must succeed; returns the decoded body."""
    status, body = srv.request("GET", path, key=key)
    assert status == 200, (path, status, body)
    return body


class SSE:
    """A blocking Server-Sent Events reader on a background thread (for tests)."""

    def __init__(
        self,
        srv: Any,
        path: str,
        headers: dict[str, str] | None = None,
        key: str | None = None,
        cookie: str | None = None,
    ) -> None:
        import http.client
        import queue
        import threading

        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.comments: list[str] = []
        self.closed = threading.Event()  # set when the server ends the stream
        self._pending: list[dict[str, Any]] = []
        self._conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
        # A browser's stream carries its session cookie (``cookie``) instead of a key.
        auth = {"Cookie": cookie} if cookie else {"Authorization": f"Bearer {key or srv.api_key}"}
        hdrs = {**auth, "Accept": "text/event-stream", **(headers or {})}
        self._conn.request("GET", path, headers=hdrs)
        self.response = self._conn.getresponse()
        self.status = self.response.status
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()

    def _read(self) -> None:
        event: dict[str, Any] = {}
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                text = line.decode().rstrip("\n")
                if text.startswith(":"):
                    self.comments.append(text)
                elif text == "":
                    if "data" in event:
                        event["data"] = json.loads(event["data"])
                        self.events.put(event)
                    event = {}
                else:
                    field, _, value = text.partition(": ")
                    event[field] = value
        except Exception:  # the connection was closed under us: the reader just stops
            return
        finally:
            self.closed.set()

    def next(self, timeout: float = 30.0, event: str | None = None) -> dict[str, Any]:
        """The next event of type ``event`` (others stay queued for later calls)."""
        import queue
        import time

        for i, got in enumerate(self._pending):
            if event is None or got.get("event") == event:
                return self._pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event or 'SSE'} event within {timeout} s")
            try:
                got = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None or got.get("event") == event:
                return got
            self._pending.append(got)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for a project stream's ``: ready`` comment (its starting positions are set)."""
        import time

        deadline = time.monotonic() + timeout
        while ": ready" not in self.comments:
            if time.monotonic() > deadline:
                raise TimeoutError("the stream never said it was ready")
            time.sleep(0.02)

    def rows_until(self, last_seq: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Collect ``rows`` events until a row with ``_seq == last_seq`` arrives."""
        out: list[dict[str, Any]] = []
        while not out or out[-1]["_seq"] < last_seq:
            out.extend(self.next(timeout, "rows")["data"]["rows"])
        return out

    def close(self) -> None:
        """Drop the connection."""
        try:
            self._conn.sock.shutdown(2)  # type: ignore[union-attr]
        except OSError:
            pass
        self._conn.close()


# --- a server process's memory (Linux) ------------------------------------------------------


def project_stream_resumes_from_any_event(srv: Any, prefix: str) -> list[str]:
    """Past DELTA_MAX runs moving at once, most of a project stream's event ids are a whole
    cursor plus the runs that moved since (http/live.py): check that resuming from a delta
    id, and from one after a whole cursor, loses and repeats nothing; the ids seen."""
    import time

    from gradexp.server.http.live import DELTA_MAX

    project = f"{prefix}-{new_id('')[:8]}"
    runs = [new_id() for _ in range(DELTA_MAX + 8)]
    for run in runs:
        put_run(srv, run, project=project)
    path = f"/api/v1/projects/{srv.user}/{project}/events"
    stream = SSE(srv, path)
    got: list[dict[str, Any]] = []
    try:
        stream.wait_ready()
        for run in runs:
            post(srv, run, steps_batch(1, 2))
        deadline = time.monotonic() + 30
        while len(got) < len(runs):
            assert time.monotonic() < deadline, len(got)
            got.append(stream.next(event="rows"))
    finally:
        stream.close()
    ids = [ev["id"] for ev in got]
    assert any("." in i for i in ids) and any("." not in i for i in ids)  # both kinds
    for n, cut in enumerate((DELTA_MAX // 2, DELTA_MAX + 3)):  # a delta id; one after a whole
        before = {ev["data"]["run_id"] for ev in got[: cut + 1]}
        resumed = SSE(srv, path, headers={"Last-Event-ID": got[cut]["id"]})
        try:
            seen: dict[str, list[int]] = {}
            want = {r: [1, 2] for r in runs if r not in before}
            if n:  # the rows the first pass added to runs[0] came after any of these ids
                want[runs[0]] = [*want.get(runs[0], []), *range(3, 3 + n)]
            deadline = time.monotonic() + 30
            while seen != want:
                assert time.monotonic() < deadline, (cut, seen)
                ev = resumed.next(event="rows")
                seen.setdefault(ev["data"]["run_id"], []).extend(
                    r["_seq"] for r in ev["data"]["rows"]
                )
            assert not any(e.get("event") == "reset" for e in resumed._pending)
            post(srv, runs[0], steps_batch(3 + n, 1))  # and nothing else comes before it
            ev = resumed.next(event="rows")
            assert ev["data"]["run_id"] == runs[0]
            assert [r["_seq"] for r in ev["data"]["rows"]] == [3 + n]
        finally:
            resumed.close()
    return ids


def reset_peak(srv: Any) -> int:
    """Reset the server's peak memory to its current; returns the current RSS in KiB."""
    with open(f"/proc/{srv.proc.pid}/clear_refs", "w") as f:
        f.write("5")
    return _status(srv, "VmRSS")


def peak_kib(srv: Any) -> int:
    """The server's peak resident memory since the last :func:`reset_peak`, in KiB."""
    return _status(srv, "VmHWM")


def _status(srv: Any, field: str) -> int:
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def anonymous_get(srv: Any, path: str) -> tuple[int, Any]:
    """A GET with no credential at all (no key, no cookie): a share link's visitor."""
    try:
        with urllib.request.urlopen(srv.url + path, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        body = err.read()
        return err.code, json.loads(body) if body.startswith(b"{") else body


def log_file(srv: Any, run_id: str, seq: int, path: str, data: bytes) -> None:
    """Upload ``data`` as a blob and index it as the run's file ``path``."""
    sha = hashlib.sha256(data).hexdigest()
    status, _ = srv.request(
        "PUT",
        f"/api/v1/runs/{run_id}/blobs/{sha}",
        raw=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status in (200, 201)
    rec = {"seq": seq, "type": "file", "path": path, "sha256": sha, "size": len(data)}
    assert post(srv, run_id, batch([rec]))[0] == 200


def put_writer(srv: Any, run_id: str, rank: int, world: int = 2, **fields: Any) -> tuple[int, Any]:
    """Create (or resume) writer ``rank`` of a distributed run of ``world`` writers."""
    writer = {"rank": rank, "world_size": world}
    return put_run(srv, run_id, attempt=fields.pop("attempt", f"a{rank}"), writer=writer, **fields)


def post_as(srv: Any, run_id: str, rank: int, doc: Any) -> tuple[int, Any]:
    """POST a batch as writer ``rank`` (``?writer=N``); the reply without its pacing
    fields, as ``helpers.post`` gives it."""
    path = f"/api/v1/runs/{run_id}/records?writer={rank}"
    status, body = srv.request("POST", path, raw=gz(doc), headers=GZIP)
    if status == 200 and isinstance(body, dict):
        body.pop("watched", None)
        body.pop("batch_interval", None)
    return status, body
