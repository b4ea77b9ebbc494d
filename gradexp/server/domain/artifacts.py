"""Artifacts: the ``artifact`` record at ingest, versions, aliases, lineage, and reads.

An ``artifact`` record (docs/protocol.md, "Artifacts") either logs a version (action
``log``: a name, a type and a manifest of files) or says that the run used one (action
``use``: a name and an alias, ``vN`` or a manifest digest). At ingest, inside the batch's
transaction:

- a logged manifest whose digest (computed here, ``gradexp.protocol.artifacts``) equals the
  latest version's is that version again; otherwise it becomes the next one (v0, v1...),
  taken by the unique (project, name, version) constraint: a run that loses that race to
  another reads the new latest and tries again, in a savepoint of the same transaction;
  ``latest`` and the record's aliases move to it, and the run is recorded as its maker;
- a use is resolved against what is stored then and recorded as the run's input (a
  reference to nothing is skipped: there is nothing to link).

Every file the manifest names must already be stored in the project (the SDK uploads the
missing ones first, see ``artifact_uploads``); a batch that names one that is not is
refused before anything is written (409 ``blob_missing``), like a ``file`` record.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gradexp.protocol.artifacts import (
    MAX_ARTIFACT_FILE_BYTES,
    MAX_ARTIFACT_FILES,
    MAX_ARTIFACT_METADATA_BYTES,
    alias_problem,
    artifact_name_problem,
    manifest_digest,
    version_number,
)
from gradexp.protocol.names import SHA256_RE
from gradexp.server.domain.errors import Conflict, Invalid, NotFound, RateLimited
from gradexp.server.storage import schema as s
from gradexp.server.storage.db import insert_ignore, inserted_id, upsert_statement

#: Tries at the next version number when other runs log the same name at the same moment.
VERSION_TRIES = 5

__all__ = [
    "check_artifact",
    "find_version",
    "list_artifacts",
    "missing_blobs",
    "project_blob",
    "run_artifacts",
    "store_artifacts",
]

MAX_ALIASES = 32
MAX_REF = 2048  # characters of a reference's URI
VERSIONS_PAGE = 10_000


def _bad(message: str) -> Invalid:
    return Invalid(message, code="bad_batch")


def _check_path(path: Any, where: str) -> str:
    parts = path.split("/") if type(path) is str else []
    if not parts or len(path) > 512 or any(p in ("", ".", "..") for p in parts) or "\\" in path:
        raise _bad(f"{where} must be a relative '/'-separated path without '.' or '..' parts")
    return str(path)


def check_artifact(rec: dict[str, Any], where: str) -> None:
    """Validate an ``artifact`` record in place (the batch's other checks call this)."""
    action = rec.get("action")
    problem = artifact_name_problem(rec.get("name"))
    if problem is not None:
        raise _bad(f"{where}.name {problem}")
    t = rec.get("time")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not t - t == 0:
        raise _bad(f"{where}.time must be a number")
    if action == "use":
        ref = rec.get("ref")
        if type(ref) is not str or (
            not SHA256_RE.fullmatch(ref)
            and version_number(ref) is None
            and artifact_name_problem(ref)
        ):
            raise _bad(f"{where}.ref must be an alias, a version (v3) or a manifest digest")
        return
    if action != "log":
        raise _bad(f"{where}.action must be 'log' or 'use'")
    problem = artifact_name_problem(rec.get("artifact_type"))
    if problem is not None:
        raise _bad(f"{where}.artifact_type {problem}")
    aliases = rec.get("aliases", [])
    if type(aliases) is not list or len(aliases) > MAX_ALIASES:
        raise _bad(f"{where}.aliases must be a list of at most {MAX_ALIASES} aliases")
    for alias in aliases:
        problem = alias_problem(alias)
        if problem is not None:
            raise _bad(f"{where}.aliases: {alias!r} {problem}")
    description = rec.get("description")
    if description is not None and type(description) is not str:
        raise _bad(f"{where}.description must be a string or null")
    metadata = rec.get("metadata", {})
    if type(metadata) is not dict:
        raise _bad(f"{where}.metadata must be an object")
    if len(orjson.dumps([description, metadata])) > MAX_ARTIFACT_METADATA_BYTES:
        raise _bad(f"{where}: metadata and description are limited to 256 KiB")
    files = rec.get("files")
    if type(files) is not list or len(files) > MAX_ARTIFACT_FILES:
        raise _bad(f"{where}.files must be a list of at most {MAX_ARTIFACT_FILES} entries")
    seen: set[str] = set()
    for i, entry in enumerate(files):
        at = f"{where}.files[{i}]"
        if type(entry) is not dict:
            raise _bad(f"{at} must be an object")
        path = _check_path(entry.get("path"), f"{at}.path")
        if path in seen:
            raise _bad(f"{at}.path {path!r} appears twice")
        seen.add(path)
        if entry.get("ref") is not None:
            if type(entry["ref"]) is not str or not 0 < len(entry["ref"]) <= MAX_REF:
                raise _bad(f"{at}.ref must be a URI of at most {MAX_REF} characters")
            continue
        if type(entry.get("sha256")) is not str or not SHA256_RE.fullmatch(entry["sha256"]):
            raise _bad(f"{at}.sha256 must be 64 lowercase hex characters")
        size = entry.get("size")
        if type(size) is not int or not 0 <= size <= MAX_ARTIFACT_FILE_BYTES:
            raise _bad(f"{at}.size must be an integer from 0 to 1 TiB")


def _manifest(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest as stored: by path, without the client's local paths."""
    out = []
    for f in sorted(files, key=lambda e: e["path"]):
        if f.get("ref") is not None:
            out.append({"path": f["path"], "ref": f["ref"]})
        else:
            out.append({"path": f["path"], "sha256": f["sha256"], "size": f["size"]})
    return out


# --- at ingest (the batch's transaction, on the writer) ---------------------------------------


def check_blobs_present(conn: Connection, project_id: int, recs: list[dict[str, Any]]) -> None:
    """Refuse (409 ``blob_missing``) records that name bytes the project does not hold."""
    shas = {
        f["sha256"] for r in recs if r["action"] == "log" for f in r["files"] if f.get("sha256")
    }
    if not shas:
        return
    b = s.artifact_blobs
    present: set[str] = set()
    wanted = sorted(shas)
    for start in range(0, len(wanted), 1000):
        page = wanted[start : start + 1000]
        present.update(
            sha
            for (sha,) in conn.execute(
                select(b.c.sha256).where(b.c.project_id == project_id, b.c.sha256.in_(page))
            )
        )
    missing = sorted(shas - present)
    if missing:
        raise Conflict(
            f"an artifact record names file {missing[0]}, which was not uploaded: upload it first",
            code="blob_missing",
            sha256=missing[:100],
        )


def store_artifacts(
    conn: Connection, kind: str, run_pk: int, project_id: int, recs: list[dict[str, Any]]
) -> None:
    """Apply the batch's (new, checked) ``artifact`` records, in order."""
    check_blobs_present(conn, project_id, recs)
    for rec in recs:
        if rec["action"] == "log":
            _log_version(conn, kind, run_pk, project_id, rec)
        else:
            row = _resolve(conn, project_id, rec["name"], rec["ref"])
            if row is not None:
                _note_usage(conn, kind, int(row.id), run_pk, "input", float(rec["time"]))


def _log_version(
    conn: Connection, kind: str, run_pk: int, project_id: int, rec: dict[str, Any]
) -> None:
    name = rec["name"]
    files = _manifest(rec["files"])
    digest = manifest_digest(files)
    for _ in range(VERSION_TRIES):
        version_id = _next_version(conn, run_pk, project_id, rec, files, digest)
        if version_id is not None:
            break
    else:
        raise RateLimited(
            f"artifact {name} is being logged by many runs at once: send the batch again",
            code="artifact_busy",
        )
    aa = s.artifact_aliases
    stmt = upsert_statement(
        kind,
        aa,
        ("project_id", "name", "alias"),
        lambda new, _old: [("version_id", new.version_id)],
    )
    for alias in sorted({"latest", *rec.get("aliases", ())}):
        conn.execute(
            stmt.values(project_id=project_id, name=name, alias=alias, version_id=version_id)
        )
    _note_usage(conn, kind, version_id, run_pk, "output", float(rec["time"]))


def _next_version(
    conn: Connection,
    run_pk: int,
    project_id: int,
    rec: dict[str, Any],
    files: list[dict[str, Any]],
    digest: str,
) -> int | None:
    """The version this manifest is: the latest again, or a new one; None when another
    run made a version of the name at the same moment (read again and retry)."""
    av = s.artifact_versions
    latest = conn.execute(
        select(av.c.id, av.c.version, av.c.digest)
        .where(av.c.project_id == project_id, av.c.name == rec["name"])
        .order_by(av.c.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.digest == digest:
        return int(latest.id)  # the same content: the same version
    try:
        # A savepoint: a losing insert leaves the batch's transaction usable (PostgreSQL
        # aborts the whole transaction on an error otherwise). The unique constraint on
        # (project, name, version) is what decides between two runs.
        with conn.begin_nested():
            return inserted_id(
                conn.execute(
                    av.insert().values(
                        project_id=project_id,
                        name=rec["name"],
                        version=0 if latest is None else int(latest.version) + 1,
                        type=rec["artifact_type"],
                        digest=digest,
                        description=rec.get("description"),
                        metadata=orjson.dumps(rec.get("metadata") or {}).decode(),
                        files=orjson.dumps(files).decode(),
                        file_count=len(files),
                        size=sum(int(f.get("size") or 0) for f in files),
                        run_pk=run_pk,
                        created_at=float(rec["time"]),
                    )
                )
            )
    except IntegrityError:
        return None  # committed by another run meanwhile: READ COMMITTED sees it next time


def _note_usage(
    conn: Connection, kind: str, version_id: int, run_pk: int, role: str, t: float
) -> None:
    conn.execute(
        insert_ignore(kind, s.artifact_usage).values(
            version_id=version_id, run_pk=run_pk, role=role, time=t
        )
    )


def _version_query(project_id: int, name: str, which: str) -> Any:
    av = s.artifact_versions
    query = select(av).where(av.c.project_id == project_id, av.c.name == name)
    number = version_number(which)
    if number is not None:
        return query.where(av.c.version == number)
    if SHA256_RE.fullmatch(which):
        return query.where(av.c.digest == which).order_by(av.c.version.desc()).limit(1)
    aa = s.artifact_aliases
    return query.where(
        av.c.id
        == select(aa.c.version_id)
        .where(aa.c.project_id == project_id, aa.c.name == name, aa.c.alias == which)
        .scalar_subquery()
    )


def _resolve(conn: Connection, project_id: int, name: str, which: str) -> Any:
    return conn.execute(_version_query(project_id, name, which)).first()


# --- reads ------------------------------------------------------------------------------------


def _run_ref(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "project": row.project_name, "owner": row.owner_name}


def _run_refs_query() -> Any:
    return (
        select(
            s.runs.c.pk,
            s.runs.c.id,
            s.runs.c.name,
            s.projects.c.name.label("project_name"),
            s.users.c.name.label("owner_name"),
        )
        .join(s.projects, s.projects.c.id == s.runs.c.project_id)
        .join(s.users, s.users.c.id == s.projects.c.owner_id)
    )


async def _aliases(conn: AsyncConnection, version_ids: list[int]) -> dict[int, list[str]]:
    aa = s.artifact_aliases
    out: dict[int, list[str]] = {}
    if version_ids:
        rows = await conn.execute(
            select(aa.c.version_id, aa.c.alias)
            .where(aa.c.version_id.in_(version_ids))
            .order_by(aa.c.alias)
        )
        for vid, alias in rows:
            out.setdefault(int(vid), []).append(alias)
    return out


async def _lineage(
    conn: AsyncConnection, version_ids: list[int]
) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """Per version: the runs that logged it (``output``) and used it (``input``)."""
    u = s.artifact_usage
    out: dict[int, dict[str, list[dict[str, Any]]]] = {}
    if not version_ids:
        return out
    rows = await conn.execute(
        _run_refs_query()
        .add_columns(u.c.version_id, u.c.role, u.c.time)
        .join(u, u.c.run_pk == s.runs.c.pk)
        .where(u.c.version_id.in_(version_ids))
        .order_by(u.c.time)
    )
    for row in rows:
        doc = out.setdefault(int(row.version_id), {"output": [], "input": []})
        doc[row.role].append(_run_ref(row))
    return out


def _version_doc(
    row: Any,
    aliases: list[str],
    lineage: dict[str, list[dict[str, Any]]] | None,
    with_files: bool,
) -> dict[str, Any]:
    made = (lineage or {}).get("output", [])
    doc: dict[str, Any] = {
        "name": row.name,
        "version": int(row.version),
        "type": row.type,
        "digest": row.digest,
        "description": row.description,
        "metadata": orjson.loads(row.metadata),
        "file_count": int(row.file_count),
        "size": int(row.size),
        "created_at": float(row.created_at),
        "aliases": aliases,
        "logged_by": made[0] if made else None,
        "logged_by_runs": made,
        "used_by": (lineage or {}).get("input", []),
    }
    if with_files:
        doc["files"] = orjson.loads(row.files)
    return doc


async def _docs(conn: AsyncConnection, rows: list[Any], with_files: bool) -> list[dict[str, Any]]:
    ids = [int(r.id) for r in rows]
    aliases = await _aliases(conn, ids)
    lineage = await _lineage(conn, ids)
    return [
        _version_doc(r, aliases.get(int(r.id), []), lineage.get(int(r.id)), with_files)
        for r in rows
    ]


async def find_version(
    conn: AsyncConnection, project_id: int, name: str, which: str
) -> dict[str, Any]:
    """One version (``which``: an alias, ``vN`` or a manifest digest), with its files."""
    row = (await conn.execute(_version_query(project_id, name, which))).first()
    if row is None:
        raise NotFound(f"artifact {name}:{which} not found", code="artifact_not_found")
    (doc,) = await _docs(conn, [row], with_files=True)
    return doc


async def list_versions(conn: AsyncConnection, project_id: int, name: str) -> list[dict[str, Any]]:
    """Every version of one artifact, newest first (without files)."""
    av = s.artifact_versions
    rows = list(
        (
            await conn.execute(
                select(av)
                .where(av.c.project_id == project_id, av.c.name == name)
                .order_by(av.c.version.desc())
                .limit(VERSIONS_PAGE)
            )
        ).all()
    )
    if not rows:
        raise NotFound(f"artifact {name} not found", code="artifact_not_found")
    return await _docs(conn, rows, with_files=False)


async def list_artifacts(
    conn: AsyncConnection, project_id: int, type: str | None, all_versions: bool
) -> dict[str, Any]:
    """The project's artifacts (each with its latest version), and every version if asked."""
    av = s.artifact_versions
    where = [av.c.project_id == project_id]
    if type:
        where.append(av.c.type == type)
    counts = (
        select(av.c.name, func.max(av.c.version).label("top"), func.count().label("n"))
        .where(*where)
        .group_by(av.c.name)
        .subquery()
    )
    rows = list(
        (
            await conn.execute(
                select(av, counts.c.n)
                .join(counts, and_(counts.c.name == av.c.name, counts.c.top == av.c.version))
                .where(av.c.project_id == project_id)
                .order_by(av.c.created_at.desc())
            )
        ).all()
    )
    docs = await _docs(conn, rows, with_files=False)
    out: dict[str, Any] = {
        "artifacts": [
            {"name": r.name, "type": r.type, "version_count": int(r.n), "latest": d}
            for r, d in zip(rows, docs, strict=True)
        ]
    }
    if all_versions:
        vrows = list(
            (
                await conn.execute(
                    select(av)
                    .where(*where)
                    .order_by(av.c.created_at.desc(), av.c.id.desc())
                    .limit(VERSIONS_PAGE)
                )
            ).all()
        )
        out["versions"] = await _docs(conn, vrows, with_files=True)
    return out


async def run_artifacts(conn: AsyncConnection, run_pk: int) -> dict[str, list[dict[str, Any]]]:
    """What a run logged (``logged``) and used (``used``), as version documents."""
    u, av = s.artifact_usage, s.artifact_versions
    rows = (
        await conn.execute(
            select(av, u.c.role)
            .join(u, u.c.version_id == av.c.id)
            .where(u.c.run_pk == run_pk)
            .order_by(u.c.time)
        )
    ).all()
    docs = await _docs(conn, list(rows), with_files=False)
    out: dict[str, list[dict[str, Any]]] = {"logged": [], "used": []}
    for row, doc in zip(rows, docs, strict=True):
        out["logged" if row.role == "output" else "used"].append(doc)
    return out


# --- the bytes ------------------------------------------------------------------------------


async def missing_blobs(conn: AsyncConnection, project_id: int, shas: list[str]) -> set[str]:
    """Which of these sha256s the project does not hold."""
    b = s.artifact_blobs
    present = {
        sha
        for (sha,) in await conn.execute(
            select(b.c.sha256).where(b.c.project_id == project_id, b.c.sha256.in_(shas))
        )
    }
    return set(shas) - present


async def project_blob(conn: AsyncConnection, project_id: int, sha256: str) -> int | None:
    """The size of a file's bytes the project holds, or None."""
    b = s.artifact_blobs
    size = (
        await conn.execute(
            select(b.c.size).where(b.c.project_id == project_id, b.c.sha256 == sha256)
        )
    ).scalar()
    return None if size is None else int(size)


def record_blob(conn: Connection, kind: str, project_id: int, sha256: str, size: int) -> None:
    """Note that the project holds a file's bytes (a second note changes nothing)."""
    conn.execute(
        insert_ignore(kind, s.artifact_blobs).values(
            project_id=project_id, sha256=sha256, size=size, created_at=time.time()
        )
    )
