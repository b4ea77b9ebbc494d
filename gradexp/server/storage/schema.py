"""The SQL schema, as SQLAlchemy Core tables (the queries use these; Alembic migrations
under ``migrations/`` create and change them, and must be kept in step with this file).

Times are Unix seconds in double columns (one representation across SQLite, PostgreSQL and
MySQL). JSON documents are orjson text in ``Text`` columns, which MySQL widens to
``LONGTEXT``. Runs have a client-made string id and an integer surrogate ``pk`` that the
large tables (history, rollups) key on, because a 4-8 byte key keeps their indexes small.
MySQL tables use a binary collation: keys and names are case-sensitive everywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# LONGTEXT on MySQL (TEXT there stops at 64 KiB); plain text elsewhere.
JsonText = Text().with_variant(mysql.LONGTEXT(), "mysql")
# SQLite only has 64-bit INTEGER, and only an INTEGER PRIMARY KEY autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")

MYSQL_TABLE: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    # Browser sign-in (migration 0003): "scrypt$N$r$p$salt$hash", NULL for key-only users.
    Column("password_hash", String(255), nullable=True),
    Column("password_changed_at", Double, nullable=True),
    # "user", or "team" (migration 0012): a team owns projects and nobody signs in as it.
    Column("kind", String(8), nullable=False, server_default="user"),
    **MYSQL_TABLE,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    Column("last_used_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    **MYSQL_TABLE,
)

# Browser sessions (migration 0003): only the SHA-256 of the cookie's token is stored.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("user_agent", String(256), nullable=True),
    Column("ip", String(64), nullable=True),
    **MYSQL_TABLE,
)

# One-time codes (migration 0003), stored hashed: "authorize" codes of `gradexp login` (with
# their PKCE challenge and loopback redirect), first-run "setup" tokens, sign-in "link"s.
auth_codes = Table(
    "auth_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("purpose", String(16), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("challenge", String(128), nullable=True),
    Column("redirect_uri", String(256), nullable=True),
    Column("client_name", String(128), nullable=True),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("used_at", Double, nullable=True),
    **MYSQL_TABLE,
)

# Wrong-password counters, shared by every server process: one row per (user, address),
# per user, and per (user, known browser), keyed by a hash (domain/accounts/lockout.py).
login_failures = Table(
    "login_failures",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("first_failed_at", Double, nullable=False),
    Column("locked_until", Double, nullable=False),
    **MYSQL_TABLE,
)

# Secrets every server process shares (migration 0004), made once by whichever process
# needs one first: the key that signs the "known browser" cookie of sign-in.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    **MYSQL_TABLE,
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("owner_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", Double, nullable=False),
    # "private" (owner or team) or "signed_in" (every signed-in user reads it) (0012).
    Column("visibility", String(16), nullable=False, server_default="private"),
    # A deleted project keeps its row (ids are never reused) under an unreachable name
    # (``domain/manage.py``); set when it was deleted (migration 0015).
    Column("deleted_at", Double, nullable=True),
    UniqueConstraint("owner_id", "name", name="uq_projects_owner_name"),
    **MYSQL_TABLE,
)

# Who belongs to a team, and as what: "viewer", "member" or "admin" (migration 0012).
team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("created_at", Double, nullable=False),
    Index("ix_team_members_user", "user_id"),
    **MYSQL_TABLE,
)

# Read-only links to some runs of a project (0012): only the token's SHA-256 is stored.
share_links = Table(
    "share_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("run_ids", JsonText, nullable=False),  # the shared runs' ids, a JSON list
    Column("created_by", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=True),
    Column("revoked_at", Double, nullable=True),
    Index("ix_share_links_project", "project_id"),
    **MYSQL_TABLE,
)

runs = Table(
    "runs",
    metadata,
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("state", String(16), nullable=False),
    Column("exit_code", Integer, nullable=True),
    Column("config", JsonText, nullable=False),
    Column("summary", JsonText, nullable=False),  # explicit summary updates only
    Column("telemetry", JsonText, nullable=False),
    Column("tags", JsonText, nullable=False),
    Column("notes", JsonText, nullable=True),
    Column("group_name", String(256), nullable=True),
    Column("job_type", String(64), nullable=True),  # migration 0007
    # define_metric's definitions: {name: {"step_metric", "summary", "goal", "hidden"}}
    Column("metrics", JsonText, nullable=True),  # migration 0007
    Column("host", JsonText, nullable=False),
    Column("attempt", String(64), nullable=True),
    Column("started_at", Double, nullable=False),
    # The latest init() of this run: when it began and the ack it found (resume point).
    Column("attempt_started_at", Double, nullable=False),
    Column("attempt_seq", BigInteger, nullable=False, default=0),
    Column("finished_at", Double, nullable=True),
    Column("heartbeat_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("last_step", BigInteger, nullable=False, default=-1),
    Column("acked_seq", BigInteger, nullable=False, default=0),
    # Committed sequence ranges above acked_seq (batches that arrived past a gap), as a
    # JSON list of [first, last]; almost always empty, so it lives on the run row.
    Column("pending_ranges", JsonText, nullable=False),
    # A finish record waiting for the records before it (out-of-order batches).
    Column("finish_seq", BigInteger, nullable=True),
    Column("finish_exit_code", Integer, nullable=True),
    Column("finish_time", Double, nullable=True),
    # Parquet export bookkeeping: a finished run with exported_seq < acked_seq owes one.
    Column("exported_seq", BigInteger, nullable=True),
    Column("export_claimed_at", Double, nullable=True),
    Column("export_error", Text, nullable=True),
    # The user whose key created the run (0012): a team member edits their own runs.
    Column("created_by", Integer, nullable=True),
    # A distributed job's other writers (migration 0009): rank r > 0 of the run
    # ``parent_pk`` is a row of its own, left out of every list of runs; the run itself
    # (rank 0) says how many writers it waits for in ``world_size`` (NULL: one).
    Column("parent_pk", BigInteger, nullable=True),
    Column("rank", SmallInteger, nullable=True),
    Column("world_size", Integer, nullable=True),
    Index("ix_runs_project_started", "project_id", "started_at"),
    Index("uq_runs_parent_rank", "parent_pk", "rank", unique=True),
    **MYSQL_TABLE,
)

history = Table(
    "history",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("step", BigInteger, nullable=False),
    Column("time", Double, nullable=False),
    Column("row_values", JsonText, nullable=False),
    Index("ix_history_run_step", "run_pk", "step"),
    sqlite_with_rowid=False,
    **MYSQL_TABLE,
)

# The per-run key index: one row per key (derived "K#stat" series included). The last value
# by sequence is the summary's default for that key; the finite values' min, max, sum and
# count and the first value are what define_metric's other summaries need, and
# ``summary_value`` is the summary a definition chose (NULL: the last value) (0007).
run_keys = Table(
    "run_keys",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", Integer, primary_key=True, autoincrement=False),
    Column("key_name", String(300), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_value", JsonText, nullable=True),
    Column("vmin", Double, nullable=True),
    Column("vmax", Double, nullable=True),
    Column("vsum", Double, nullable=True),
    Column("vcount", BigInteger, nullable=True),
    Column("first_value", JsonText, nullable=True),
    Column("first_seq", BigInteger, nullable=True),
    Column("summary_value", JsonText, nullable=True),
    UniqueConstraint("run_pk", "key_name", name="uq_run_keys_key"),
    **MYSQL_TABLE,
)

# Precomputed downsampling: per (run, key, level, bucket) the finite min/max/sum/count,
# flags for non-finite values seen (1 NaN, 2 +inf, 4 -inf) and the last value by sequence
# (``last`` NULL with ``last_code`` 1/2/3 when that last value was NaN/+inf/-inf).
rollups = Table(
    "rollups",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", Integer, primary_key=True, autoincrement=False),
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("vmin", Double, nullable=True),
    Column("vmax", Double, nullable=True),
    Column("vsum", Double, nullable=False),
    Column("vcount", BigInteger, nullable=False),
    Column("flags", SmallInteger, nullable=False),
    Column("last", Double, nullable=True),
    Column("last_code", SmallInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("last_time", Double, nullable=False),
    sqlite_with_rowid=False,
    **MYSQL_TABLE,
)

# Typed values (histograms, tensors, images) again, keyed by key, so the histogram heatmap
# and media views read only the rows of one key instead of scanning the history.
typed_values = Table(
    "typed_values",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("step", BigInteger, nullable=False),
    Column("time", Double, nullable=False),
    Column("value", JsonText, nullable=False),
    Index("ix_typed_values_step", "run_pk", "key_id", "step"),
    **MYSQL_TABLE,
)

# Alerts a run sent (gradexp.alert), by sequence (migration 0007).
alerts = Table(
    "alerts",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", Double, nullable=False),
    Column("level", String(8), nullable=False),
    Column("title", String(256), nullable=False),
    Column("text", Text, nullable=False),
    **MYSQL_TABLE,
)

blobs = Table(
    "blobs",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("created_at", Double, nullable=False),
    **MYSQL_TABLE,
)

files = Table(
    "files",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("path", String(512), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("created_at", Double, nullable=False),
    **MYSQL_TABLE,
)

# An upload in parts (migration 0010): a large blob arrives in parts, each stored as its
# own object; ``received`` is the offset the next part must start at, so a client that
# lost its connection (or a new process) asks where to continue. One row per (run, hash).
uploads = Table(
    "uploads",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("sha256", String(64), primary_key=True),
    Column("upload_id", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False),
    Column("part_bytes", Integer, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    **MYSQL_TABLE,
)

# --- what the machine did (migration 0008): records "system", "console", "environment".
# Every table has the writer's ``rank`` (0 for a run with one process).

# One row per system sample (record "system"): its time and {key: number} as JSON.
system_samples = Table(
    "system_samples",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("rank", SmallInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", Double, nullable=False),
    Column("sample_values", JsonText, nullable=False),
    **MYSQL_TABLE,
)

# Console lines by id (record "console"): a later record with the same id replaces the
# line (a progress bar's newer state); ``seq`` is the record that wrote it last, the
# cursor of the live log. ``stream``: 0 stdout, 1 stderr.
console_lines = Table(
    "console_lines",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("rank", SmallInteger, primary_key=True, autoincrement=False),
    Column("line_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("time", Double, nullable=False),
    Column("stream", SmallInteger, nullable=False),
    Column("text", JsonText, nullable=False),
    Index("ix_console_lines_seq", "run_pk", "seq"),
    **MYSQL_TABLE,
)

# Per run and rank: the console bytes stored (the cap) and the lines refused past it.
console_totals = Table(
    "console_totals",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("rank", SmallInteger, primary_key=True, autoincrement=False),
    Column("lines", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("dropped_lines", BigInteger, nullable=False),
    Column("dropped_bytes", BigInteger, nullable=False),
    **MYSQL_TABLE,
)

# The run's environment (record "environment"), per rank.
run_environments = Table(
    "run_environments",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("rank", SmallInteger, primary_key=True, autoincrement=False),
    Column("environment", JsonText, nullable=False),
    Column("updated_at", Double, nullable=False),
    **MYSQL_TABLE,
)

# Runs that a live stream of some server process follows right now (``domain/live``): each
# process renews its runs' rows every few seconds while it has streams open, so a row whose
# ``watched_until`` has passed means nobody watches that run any more.
live_watches = Table(
    "live_watches",
    metadata,
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("watched_until", Double, nullable=False),
    **MYSQL_TABLE,
)

# --- artifacts (migration 0014): versioned sets of files per project, content-addressed.

# One row per version of a project's artifact ``name`` (v0, v1, ...). ``files`` is the
# manifest as JSON: [{"path", "sha256", "size"} | {"path", "ref"}], by path.
artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String(128), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("description", Text, nullable=True),
    Column("metadata", JsonText, nullable=False),
    Column("files", JsonText, nullable=False),
    Column("file_count", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("run_pk", BigInteger, nullable=True),  # the run that logged it first
    Column("created_at", Double, nullable=False),
    UniqueConstraint("project_id", "name", "version", name="uq_artifact_versions_version"),
    Index("ix_artifact_versions_digest", "project_id", "name", "digest"),
    **MYSQL_TABLE,
)

# Where each alias of an artifact points (``latest`` always to the last version logged).
artifact_aliases = Table(
    "artifact_aliases",
    metadata,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(128), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version_id", BigInteger, nullable=False, index=True),
    **MYSQL_TABLE,
)

# Lineage: which runs logged ("output") and used ("input") each version.
artifact_usage = Table(
    "artifact_usage",
    metadata,
    Column("version_id", BigInteger, primary_key=True, autoincrement=False),
    Column("run_pk", BigInteger, primary_key=True, autoincrement=False),
    Column("role", String(8), primary_key=True),
    Column("time", Double, nullable=False),
    Index("ix_artifact_usage_run", "run_pk"),
    **MYSQL_TABLE,
)

# The files' bytes a project holds, by sha256 (one object each, whatever the versions).
artifact_blobs = Table(
    "artifact_blobs",
    metadata,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    **MYSQL_TABLE,
)

# Deleted runs (migration 0015): the tombstone written in the transaction that deletes the
# run's row. It keeps the id reserved (a late batch gets "run deleted", never a fresh run),
# keeps the pk from being handed out again, and lists what the reclaimer still owes
# (``reclaimed_at`` NULL): the rows of every table keyed by ``run_pk`` and the run's objects.
deleted_runs = Table(
    "deleted_runs",
    metadata,
    Column("pk", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("project_id", Integer, nullable=False),
    Column("name", String(256), nullable=False),
    Column("deleted_at", Double, nullable=False),
    Column("deleted_by", Integer, nullable=True),
    Column("reclaimed_at", Double, nullable=True),
    **MYSQL_TABLE,
)

# Named leases that server processes take in turns (migration 0015): the storage
# reclaimer's, so one process at a time reclaims (``domain/reclaim.py``).
server_leases = Table(
    "server_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", Double, nullable=False),
    **MYSQL_TABLE,
)

__all__ = [
    "alerts",
    "api_keys",
    "artifact_aliases",
    "artifact_blobs",
    "artifact_usage",
    "artifact_versions",
    "auth_codes",
    "blobs",
    "console_lines",
    "console_totals",
    "deleted_runs",
    "files",
    "history",
    "live_watches",
    "login_failures",
    "metadata",
    "projects",
    "rollups",
    "run_environments",
    "run_keys",
    "runs",
    "server_leases",
    "server_secrets",
    "sessions",
    "share_links",
    "system_samples",
    "team_members",
    "typed_values",
    "uploads",
    "users",
]
