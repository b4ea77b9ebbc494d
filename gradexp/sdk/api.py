"""``gradexp.Api``: read projects, runs and their history from a gradexp server; rename,
annotate, tag and delete runs.

A blocking client for scripts and notebooks::

    import gradexp

    api = gradexp.Api()                      # settings as the SDK resolves them
    for run in api.runs("mnist", filters={"state": "finished"}, order="-started_at"):
        print(run.name, run.summary.get("loss"))
    run = api.run("k2j4h5g6f7")
    rows = run.history(keys=["loss"])        # every row: [{"_step": 0, "_timestamp": ..., "loss": ...}]
    small = run.history(samples=500)         # downsampled on the server
    table = run.to_arrow()                   # the whole history as a pyarrow Table
    run.update(name="baseline", tags=["keep"], notes="the one to beat")
    api.delete_runs(["a1b2c3", "d4e5f6"], project="mnist")

It uses the standard library's ``urllib`` on the calling thread: no event loop is created or
touched, so it is safe in Jupyter (whose kernel already runs one) and in any thread.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradexp.core.settings import resolve_settings
from gradexp.errors import ApiError, GradexpError
from gradexp.protocol.values import decode_value, decode_values
from gradexp.protocol.wire import API_PREFIX

if TYPE_CHECKING:
    from gradexp.sdk.artifacts import Artifact

DEFAULT_TIMEOUT = 60.0
_UNSET = object()
ROWS_PAGE = 10_000
RUNS_PAGE = 200
ALL_STEPS = 100_000  # ``samples`` that asks for every step (the server's cap)


class Api:
    """A connection to a gradexp server, for reading (and changing) runs.

    ``base_url`` and ``api_key`` default to what the SDK would use: ``GRADEXP_BASE_URL`` /
    ``GRADEXP_API_KEY``, then the credentials ``gradexp login`` saved.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        settings = resolve_settings(base_url=base_url, api_key=api_key, mode="online")
        assert settings.base_url is not None and settings.api_key is not None
        self.base_url = settings.base_url.rstrip("/")
        self._key = settings.api_key
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Api({self.base_url!r})"

    # --- HTTP ------------------------------------------------------------------------------

    def _open(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        method: str = "GET",
        body: Any = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.base_url + API_PREFIX + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Authorization": f"Bearer {self._key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            raise _api_error(err) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise GradexpError(
                f"cannot reach the gradexp server at {self.base_url} ({reason}); "
                "is it running, and is the URL right?"
            ) from None

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        with self._open(path, params) as resp:
            return json.loads(resp.read())

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(path, method=method, body=body) as resp:
            return json.loads(resp.read())

    def _get_bytes(self, path: str) -> bytes:
        with self._open(path) as resp:
            return bytes(resp.read())

    # --- reads -----------------------------------------------------------------------------

    def viewer(self) -> dict[str, Any]:
        """Who the API key belongs to: ``{"user": {...}, "key": {...}}``."""
        return dict(self._get("/viewer"))

    def projects(self) -> list[dict[str, Any]]:
        """Your projects: ``[{"owner", "name", "run_count", "last_run_at", ...}]``."""
        return list(self._get("/projects")["projects"])

    def runs(
        self,
        project: str,
        filters: Mapping[str, Any] | None = None,
        order: str | None = None,
    ) -> list[ApiRun]:
        """The runs of ``project`` (``"name"`` for yours, or ``"owner/name"``).

        ``filters`` may hold ``state`` (running, finished, failed, crashed), ``tag``, ``group``
        and ``q`` (text in the name or id); ``order`` is a field name such as
        ``"-started_at"`` (the default), ``"name"`` or ``"last_step"``.
        """
        owner, _, name = project.rpartition("/")
        if not owner:
            owner = self.viewer()["user"]["name"]
        params: dict[str, Any] = dict(filters or {})
        unknown = set(params) - {"state", "tag", "group", "q"}
        if unknown:
            raise ValueError(
                f"unknown run filters: {', '.join(sorted(unknown))}; use state, tag, group or q"
            )
        params["order"] = order
        params["limit"] = RUNS_PAGE
        out: list[ApiRun] = []
        path = f"/projects/{_quote(owner)}/{_quote(name)}/runs"
        while True:
            page = self._get(path, params)
            out.extend(ApiRun(self, doc) for doc in page["runs"])
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    def run(self, run_id: str) -> ApiRun:
        """One run by id."""
        return ApiRun(self, self._get(f"/runs/{_quote(run_id)}"))

    def artifact(self, path: str, type: str | None = None) -> Artifact:
        """One artifact version: ``"owner/project/name:alias"``, ``"...:v3"`` or
        ``"project/name"`` (yours, its latest). ``.download()`` fetches its files."""
        from gradexp.protocol.artifacts import parse_ref
        from gradexp.sdk.artifacts import Artifact

        parts = path.split("/")
        if len(parts) == 3:
            owner, project, ref = parts
        elif len(parts) == 2:
            owner, (project, ref) = self.viewer()["user"]["name"], parts
        else:
            raise GradexpError(
                f"artifact path {path!r}: use 'owner/project/name:alias' (or 'project/name:v3')."
            )
        name, which = parse_ref(ref)
        doc = self._get(
            f"/projects/{_quote(owner)}/{_quote(project)}/artifacts/{_quote(name)}/{_quote(which)}"
        )
        if type is not None and doc["type"] != type:
            raise GradexpError(f"artifact {path} is of type {doc['type']!r}, not {type!r}.")
        return Artifact._from_server(self, owner, project, doc)

    def artifacts(self, project: str, type: str | None = None) -> list[Artifact]:
        """Every artifact version in ``project`` (of ``type``, if given), newest first."""
        from gradexp.sdk.artifacts import Artifact

        owner, _, name = project.rpartition("/")
        if not owner:
            owner = self.viewer()["user"]["name"]
        path = f"/projects/{_quote(owner)}/{_quote(name)}/artifacts"
        doc = self._get(path, {"type": type, "versions": "all"})
        return [Artifact._from_server(self, owner, name, v) for v in doc["versions"]]

    # --- changes ---------------------------------------------------------------------------

    def delete_runs(self, runs: Sequence[str | ApiRun], project: str | None = None) -> list[str]:
        """Delete several runs (ids or runs) at once, all or none; returns the ids deleted.

        Without ``project`` the runs may be in any of your projects (one request each);
        with it (``"name"`` or ``"owner/name"``) they must all be in that project and go in
        one request. Their storage is reclaimed by the server in the background.
        """
        ids = [r.id if isinstance(r, ApiRun) else r for r in runs]
        if project is None:
            return [
                run_id
                for one in ids
                for run_id in self._send("DELETE", f"/runs/{_quote(one)}")["deleted"]
            ]
        path = f"/projects/{self._project_path(project)}/runs/delete"
        return list(self._send("POST", path, {"ids": ids})["deleted"])

    def delete_project(self, project: str) -> list[str]:
        """Delete a project (``"name"`` or ``"owner/name"``) and all its runs; returns the
        ids of the runs deleted."""
        return list(self._send("DELETE", f"/projects/{self._project_path(project)}")["runs"])

    def _project_path(self, project: str) -> str:
        owner, _, name = project.rpartition("/")
        if not owner:
            owner = self.viewer()["user"]["name"]
        return f"{_quote(owner)}/{_quote(name)}"


class ApiRun:
    """A run as the server last described it (``refresh()`` fetches it again)."""

    def __init__(self, api: Api, doc: dict[str, Any]) -> None:
        self._api = api
        self._load(doc)

    def _load(self, doc: dict[str, Any]) -> None:
        self._doc = doc
        self.id: str = doc["id"]
        self.name: str = doc["name"]
        self.project: str = doc["project"]
        self.owner: str = doc["owner"]
        self.state: str = doc["state"]
        self.exit_code: int | None = doc.get("exit_code")
        self.config: dict[str, Any] = doc.get("config") or {}
        self.summary: dict[str, Any] = decode_values(doc.get("summary") or {})
        self.tags: list[str] = doc.get("tags") or []
        self.notes: str | None = doc.get("notes")
        self.group: str | None = doc.get("group")
        self.job_type: str | None = doc.get("job_type")
        #: define_metric's definitions: ``[{"name", "step_metric", "summary", "goal", "hidden"}]``
        self.metrics: list[dict[str, Any]] = doc.get("metrics") or []
        self.host: dict[str, Any] = doc.get("host") or {}
        self.started_at: float | None = doc.get("started_at")
        self.finished_at: float | None = doc.get("finished_at")
        self.last_step: int = doc.get("last_step", -1)
        self.telemetry: dict[str, Any] = doc.get("telemetry") or {}
        self.url: str = doc.get("url", "")
        #: A distributed run's processes (docs/distributed.md): 1 for a run of one.
        self.world_size: int = doc.get("world_size") or 1
        #: Each rank's ``{"rank", "state", "exit_code", "host", "last_step", ...}`` (a
        #: rank that went silent reads ``crashed``); empty for a run of one.
        self.writers: list[dict[str, Any]] = doc.get("writers") or []
        self._environment: object = _UNSET  # fetched on first use

    def __repr__(self) -> str:
        return f"<ApiRun {self.owner}/{self.project}/{self.id} {self.name!r} ({self.state})>"

    @property
    def path(self) -> str:
        """``owner/project/id``."""
        return f"{self.owner}/{self.project}/{self.id}"

    def update(
        self,
        *,
        name: str | None = None,
        notes: str | object | None = _UNSET,
        tags: Sequence[str] | None = None,
    ) -> ApiRun:
        """Rename the run, or change its notes (None clears them) or tags (the whole
        list); returns the run as the server now describes it. Open pages see it live."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if notes is not _UNSET:
            body["notes"] = notes
        if tags is not None:
            body["tags"] = list(tags)
        if not body:
            raise ValueError("nothing to change: pass name=, notes= or tags=")
        self._load(self._api._send("PATCH", f"/runs/{_quote(self.id)}", body))
        return self

    def delete(self) -> None:
        """Delete the run: it disappears at once; the server reclaims its storage later.
        A script still logging to it is told so and stops uploading."""
        self._api._send("DELETE", f"/runs/{_quote(self.id)}")

    def refresh(self) -> ApiRun:
        """Fetch the run again (state, summary and so on) and return it."""
        self._load(self._api._get(f"/runs/{_quote(self.id)}"))
        return self

    def keys(self, rank: int = 0) -> list[dict[str, Any]]:
        """The run's keys: ``[{"key", "kind", "count", "first_step", "last_step"}]``
        (``rank``: those another rank of a distributed run logged)."""
        params = {"rank": rank or None}
        return list(self._api._get(f"/runs/{_quote(self.id)}/keys", params)["keys"])

    def scan_history(
        self,
        keys: Sequence[str] | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
        page_size: int = ROWS_PAGE,
        rank: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Every history row, page by page (memory stays flat for long runs); ``rank``:
        another rank's rows, for a distributed run (its history is rank 0's)."""
        params: dict[str, Any] = {
            "rank": rank or None,
            "keys": ",".join(keys) if keys else None,
            "min_step": min_step,
            "max_step": max_step,
            "limit": page_size,
            "after_seq": 0,
        }
        while True:
            page = self._api._get(f"/runs/{_quote(self.id)}/history/rows", params)
            for row in page["rows"]:
                row.pop("_seq", None)
                yield {k: (v if k.startswith("_") else decode_value(v)) for k, v in row.items()}
            if page.get("next_after_seq") is None:
                return
            params["after_seq"] = page["next_after_seq"]

    def history(
        self,
        keys: Sequence[str] | None = None,
        samples: int | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
        rank: int = 0,
    ) -> list[dict[str, Any]]:
        """History rows as dicts with ``_step`` and ``_timestamp``.

        Without ``samples``: every row (NaN and infinities come back as floats). With
        ``samples``: at most that many points per key, downsampled on the server (each
        point the last value of its bucket; see :meth:`series` for the min and max).
        ``rank``: what another rank of a distributed run logged (the run's history is
        rank 0's; docs/distributed.md).
        """
        if samples is None:
            return list(self.scan_history(keys, min_step, max_step, rank=rank))
        series = self.series(keys, samples, min_step, max_step, rank=rank)
        by_step: dict[int, dict[str, Any]] = {}
        for key, s in series.items():
            for step, value, t in zip(s["step"], s["value"], s["time"], strict=True):
                row = by_step.setdefault(step, {"_step": step, "_timestamp": t})
                row[key] = value
        return [by_step[step] for step in sorted(by_step)]

    def series(
        self,
        keys: Sequence[str] | None = None,
        samples: int = 1000,
        min_step: int | None = None,
        max_step: int | None = None,
        rank: int = 0,
    ) -> dict[str, dict[str, list[Any]]]:
        """Downsampled series per key: ``{"loss": {"step", "value", "min", "max", "time"}}``.

        Each of at most ``samples`` buckets keeps its min and max, so spikes survive.
        ``rank``: another rank's series, for a distributed run.
        """
        doc = self._api._get(
            f"/runs/{_quote(self.id)}/history",
            {
                "rank": rank or None,
                "keys": ",".join(keys) if keys else None,
                "samples": samples,
                "min_step": min_step,
                "max_step": max_step,
            },
        )
        out: dict[str, dict[str, list[Any]]] = {}
        for key, s in doc["series"].items():
            out[key] = {
                "step": s["step"],
                "time": s["time"],
                "value": [decode_value(v) for v in s["value"]],
                "min": [decode_value(v) for v in s["min"]],
                "max": [decode_value(v) for v in s["max"]],
            }
        return out

    def histograms(self, key: str, samples: int | None = None) -> dict[str, Any]:
        """A histogram key over time: ``{"step", "time", "bins", "counts"}`` (at most
        ``samples`` rows, spread evenly over the steps; default 200)."""
        doc = self._api._get(
            f"/runs/{_quote(self.id)}/histograms", {"key": key, "samples": samples}
        )
        for name in ("bins", "counts"):
            if name in doc:
                doc[name] = [[decode_value(x) for x in row] for row in doc[name]]
        return dict(doc)

    def table(self, key: str, step: int | None = None) -> Any:
        """The ``gradexp.Table`` logged under ``key`` at ``step`` (default: the last step
        that logged one), as a ``LoggedTable``: ``.columns``, ``.types``, ``.rows``,
        ``.to_dicts()``, ``.to_arrow()``. Raises KeyError when no table was logged there."""
        from gradexp.sdk.values.table import LoggedTable

        steps, values = self._table_values(key)
        if not steps:
            raise KeyError(f"run {self.id} has no table under {key!r}")
        i = len(steps) - 1 if step is None else (steps.index(step) if step in steps else -1)
        if i < 0:
            raise KeyError(f"run {self.id} logged no table under {key!r} at step {step}")
        path = _quote(values[i]["path"], safe="/")
        data = self._api._get_bytes(f"/runs/{_quote(self.id)}/files/{path}")
        return LoggedTable(json.loads(data), key=key, step=steps[i])

    def tables(self, key: str) -> list[int]:
        """The steps at which a table was logged under ``key`` (empty when none was)."""
        return self._table_values(key)[0]

    def _table_values(self, key: str) -> tuple[list[int], list[dict[str, Any]]]:
        try:
            doc = self._api._get(
                f"/runs/{_quote(self.id)}/histograms", {"key": key, "samples": ALL_STEPS}
            )
        except ApiError as exc:
            if exc.status in (400, 404):  # no such key, or one of numbers
                return [], []
            raise
        if doc.get("kind") != "table":
            return [], []
        return list(doc["step"]), list(doc["values"])

    def alerts(self) -> list[dict[str, Any]]:
        """The run's alerts, oldest first: ``[{"seq", "time", "level", "title", "text"}]``."""
        return list(self._api._get(f"/runs/{_quote(self.id)}/alerts")["alerts"])

    def files(self) -> list[dict[str, Any]]:
        """The run's files: ``[{"path", "sha256", "size", "content_type", "created_at"}]``."""
        return list(self._api._get(f"/runs/{_quote(self.id)}/files")["files"])

    def download(self, path: str, root: str | os.PathLike[str] = ".") -> Path:
        """Save run file ``path`` under ``root`` (keeping its relative path); returns where."""
        target = Path(root) / path
        resolved_root = Path(root).resolve()
        if resolved_root not in target.resolve().parents:
            raise ValueError(f"refusing to write {path!r} outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._api._open(f"/runs/{_quote(self.id)}/files/{_quote(path, safe='/')}") as resp:
            tmp = target.with_name(target.name + ".part")
            with open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1024 * 1024)
            os.replace(tmp, target)
        return target

    # --- what the machine did --------------------------------------------------------------

    def system_metrics(
        self, samples: int | None = None, rank: int = 0
    ) -> dict[str, dict[str, list[float]]]:
        """System series: ``{"cpu.percent": {"time": [...], "value": [...]}, ...}``.

        Times are Unix seconds. With ``samples``, at most that many points per key (each
        the mean of its bucket; ``"min"`` and ``"max"`` beside it keep the extremes);
        without it, up to 10,000. The keys are listed in docs/sdk.md ("System metrics").
        """
        doc = self._api._get(
            f"/runs/{_quote(self.id)}/system",
            {"samples": samples if samples is not None else 10_000, "rank": rank or None},
        )
        return dict(doc["series"])

    def logs(
        self, stream: str | None = None, q: str | None = None, rank: int = 0
    ) -> list[dict[str, Any]]:
        """The console output, line by line: ``[{"time", "stream", "text", "id", "rank"}, ...]``.

        ``stream``: ``"stdout"`` or ``"stderr"`` only; ``q``: lines holding this text
        (case-insensitive); ``rank``: which process of a distributed run (each line says
        its rank). Reads page by page, so a long log costs a few requests.
        """
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"stream": stream, "q": q, "rank": rank or None, "limit": 10_000}
        while True:
            page = self._api._get(f"/runs/{_quote(self.id)}/logs", params)
            out.extend({**line, "rank": rank} for line in page["lines"])
            if page.get("next_after_id") is None:
                return out
            params["after_id"] = page["next_after_id"]

    @property
    def environment(self) -> dict[str, Any] | None:
        """Where and how the run ran (program, Python, OS, hardware, git), as recorded at
        ``init()``; None if it recorded nothing (see docs/sdk.md, "The run's environment").
        ``requirements.txt`` and ``diff.patch`` are run files: :meth:`download` them."""
        if self._environment is _UNSET:
            doc = self._api._get(f"/runs/{_quote(self.id)}/environment")
            self._environment = doc.get("environment")
        return self._environment  # type: ignore[return-value]

    def to_arrow(self) -> Any:
        """The whole history as a ``pyarrow.Table`` (``step``, ``timestamp``, one column per key)."""
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise GradexpError(
                "run.to_arrow() needs pyarrow: pip install pyarrow (or gradexp[server])"
            ) from None
        data = self._api._get_bytes(f"/runs/{_quote(self.id)}/history.parquet")
        return pq.read_table(io.BytesIO(data))


def _quote(part: str, safe: str = "") -> str:
    return urllib.parse.quote(part, safe=safe)


def _api_error(err: urllib.error.HTTPError) -> ApiError:
    code, message = "http_error", f"HTTP {err.code}"
    try:
        body = json.loads(err.read() or b"{}")
        code = body["error"]["code"]
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return ApiError(err.code, code, f"gradexp server: {message} ({err.code} {code})")
