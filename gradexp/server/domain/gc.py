"""``gradexp server gc``: what storage can be given back, and giving it back.

The background reclaimer (``reclaim.py``) removes what deleted runs leave behind as they
are deleted. ``gc`` looks at the whole store and database for anything else, and reports
(``--dry-run``) or removes it, holding the same lease as the reclaimer:

- deleted runs whose storage is still **owed** (the reclaimer has not got to them, or the
  server is not running);
- **rows of runs that no longer exist** (a blob recorded by an upload that raced the
  deletion, say);
- **orphan objects**: objects under a run that is gone (a deleted run's blobs and Parquet
  export, an export that finished after its run was deleted), and objects of live runs or
  unknown ids that no row names (a half-done upload) once older than :data:`GRACE`.
  Blobs that something else still references (``reclaim.BLOB_REFERENCES``) are kept;
- deleted projects whose **artifacts** are still owed (as the reclaimer finds them);
- **abandoned uploads**: the parts of a run-file upload in parts or of an artifact file's
  upload (``storage/parts.py``) that no request has added to for :data:`GRACE`. An
  upload is judged by its newest part, so a slow upload that keeps going is never cut.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.engine import Connection

from gradexp.server.domain.errors import Conflict
from gradexp.server.domain.reclaim import (
    Reclaimer,
    ReclaimPass,
    blob_sha,
    owed_projects,
    referenced_blobs,
    run_tables,
)
from gradexp.server.storage import schema as s
from gradexp.server.storage.objects import StoredObject, parse_run_key, run_prefix
from gradexp.server.storage.parts import Parts

GRACE = 3600.0  # seconds an object may wait for its row (an upload in flight)


@dataclass
class GcReport:
    """What ``gc`` found: owed runs, stray rows, orphan objects."""

    owed_runs: int = 0
    rows: int = 0  # rows of runs that no longer exist, owed ones included
    stray_runs: list[int] = field(default_factory=list)  # gone pks with rows, none owed
    objects: list[StoredObject] = field(default_factory=list)
    exports: int = 0  # of ``objects``: Parquet exports
    kept: int = 0  # objects of gone runs kept: something else references them
    owed_projects: int = 0  # deleted projects whose artifacts are not reclaimed yet
    #: Abandoned uploads: each one's key prefix and its objects (parts).
    uploads: dict[str, list[StoredObject]] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        """The orphan objects' bytes."""
        return sum(o.size for o in self.objects)

    def lines(self) -> list[str]:
        """The report, as ``gc`` prints it."""
        return [
            f"deleted runs not reclaimed yet: {self.owed_runs}",
            f"rows of deleted runs: {self.rows:,}",
            f"orphan objects: {len(self.objects):,} ({_size(self.bytes)}), "
            f"of which Parquet exports: {self.exports:,}",
            f"objects of deleted runs kept (still referenced): {self.kept:,}",
            f"deleted projects whose artifacts are not reclaimed yet: {self.owed_projects}",
            f"abandoned uploads (nothing sent for an hour): {len(self.uploads):,}, "
            f"{sum(len(o) for o in self.uploads.values()):,} objects "
            f"({_size(sum(o.size for objs in self.uploads.values() for o in objs))})",
        ]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _database_view(conn: Connection) -> dict[str, Any]:
    runs = {
        r.id: (r.pk, r.project_id)
        for r in conn.execute(select(s.runs.c.pk, s.runs.c.id, s.runs.c.project_id))
    }
    d = s.deleted_runs
    tombs = {
        r.id: (r.pk, r.project_id, r.reclaimed_at)
        for r in conn.execute(select(d.c.pk, d.c.id, d.c.project_id, d.c.reclaimed_at))
    }
    gone_rows: dict[int, int] = {}
    for table in run_tables():
        live = exists().where(s.runs.c.pk == table.c.run_pk)
        for pk, count in conn.execute(
            select(table.c.run_pk, func.count()).where(~live).group_by(table.c.run_pk)
        ):
            gone_rows[int(pk)] = gone_rows.get(int(pk), 0) + int(count)
    return {
        "runs": runs,
        "tombs": tombs,
        "gone_rows": gone_rows,
        "owed_projects": owed_projects(conn),
    }


def _blob_shas(conn: Connection, run_pk: int) -> set[str]:
    return set(conn.execute(select(s.blobs.c.sha256).where(s.blobs.c.run_pk == run_pk)).scalars())


async def survey(reclaimer: Reclaimer) -> GcReport:
    """Look at the database and the whole store; change nothing."""
    db, store = reclaimer.db, reclaimer.objects
    started = time.time()
    async with db.read() as conn:
        view = await conn.run_sync(_database_view)
    runs, tombs = view["runs"], view["tombs"]
    owed_pks = {pk for pk, _, reclaimed in tombs.values() if reclaimed is None}
    report = GcReport(
        owed_runs=len(owed_pks),
        rows=sum(view["gone_rows"].values()),
        stray_runs=sorted(pk for pk in view["gone_rows"] if pk not in owed_pks),
        owed_projects=len(view["owed_projects"]),
    )
    uploads: dict[str, list[StoredObject]] = {}  # every upload's parts, by its prefix
    shas: dict[int, set[str]] = {}  # per run: blobs with a row (live) or referenced (gone)
    async for obj in store.list("projects/"):
        upload = _upload_prefix(obj.key)
        parsed = parse_run_key(obj.key)
        if upload is not None and (parsed is None or parsed[1] in runs):
            uploads.setdefault(upload, []).append(obj)  # judged below, as a whole
            continue
        if parsed is None:
            continue
        project_id, run_id, rest = parsed
        sha = blob_sha(rest)
        live = runs.get(run_id)
        if live is not None and live[1] == project_id:
            # A live run's object: an export, or a blob its row names, or an upload that
            # may still be in flight; only a stale unnamed one is an orphan.
            if rest == "history.parquet" or obj.modified > started - GRACE:
                continue
            if live[0] not in shas:
                async with db.read() as conn:
                    shas[live[0]] = await conn.run_sync(_blob_shas, live[0])
            if sha is not None and sha in shas[live[0]] and len(rest) == len("blobs/") + 64:
                continue
        else:
            tomb = tombs.get(run_id)
            if tomb is None and obj.modified > started - GRACE:
                continue  # an id not known yet: a run created after the look at the database
            if tomb is not None and sha is not None:
                if tomb[0] not in shas:
                    async with db.read() as conn:
                        shas[tomb[0]] = await conn.run_sync(referenced_blobs, tomb[0])
                if sha in shas[tomb[0]]:
                    report.kept += 1
                    continue
        report.objects.append(obj)
        if rest == "history.parquet":
            report.exports += 1
    report.uploads = {
        prefix: objs
        for prefix, objs in uploads.items()
        if max(o.modified for o in objs) < started - GRACE
    }
    return report


def _upload_prefix(key: str) -> str | None:
    """The prefix of the upload a key belongs to (a run's ``.../uploads/<id>`` or a
    project's ``.../artifacts/uploads/<sha256>``), else None."""
    parts = key.split("/")
    if len(parts) >= 5 and parts[2] == "artifacts" and parts[3] == "uploads":
        return "/".join(parts[:5])
    if len(parts) >= 6 and parts[2] == "runs" and parts[4] == "uploads":
        return "/".join(parts[:6])
    return None


def _forget_upload(conn: Connection, upload_id: str) -> None:
    conn.execute(s.uploads.delete().where(s.uploads.c.upload_id == upload_id))


async def collect(reclaimer: Reclaimer, report: GcReport) -> ReclaimPass:
    """Remove what ``report`` found, holding the reclaim lease (Conflict while another
    process holds it)."""
    done = ReclaimPass()
    async with reclaimer.lease() as busy:
        if busy is not None:
            raise Conflict(
                "a server process is reclaiming storage right now (its lease runs out at "
                f"{time.strftime('%H:%M:%S', time.localtime(busy))}); run gc again then"
            )
        await reclaimer.reclaim_owed(done)
        for pk in report.stray_runs:
            await reclaimer.reclaim_run(pk, None, None, done)
        for prefix, objs in report.uploads.items():
            await Parts(reclaimer.objects, prefix).discard()
            if "/runs/" in prefix:  # its row too: a client that comes back starts afresh
                await reclaimer.db.write(_forget_upload, prefix.rsplit("/", 1)[1])
            done.objects += len(objs)
            done.bytes += sum(o.size for o in objs)
        for obj in report.objects:
            await reclaimer.objects.delete(obj.key)
            done.objects += 1
            done.bytes += obj.size
            parsed = parse_run_key(obj.key)
            if parsed is not None:
                await asyncio.to_thread(
                    reclaimer.objects.prune_folders, run_prefix(parsed[0], parsed[1])
                )
    return done
