"""Wire constants shared by the SDK and the server: paths, cookies, the run file's names and
record types, limits, and the version.

``docs/protocol.md`` is the prose version of this module (with ``names`` and ``values``
beside it); change them together. It imports nothing beyond the standard library, and
no ``typing`` at run time, so that both sides (and ``init()``) load it for free.
"""

from __future__ import annotations

from gradexp._version import __version__

TYPE_CHECKING = False  # not typing's: init() stays free of the typing import
if TYPE_CHECKING:
    from typing import Final

API_PREFIX: Final = "/api/v1"
VERSION: Final = __version__  # the one place it is written: gradexp/_version.py

# --- browser sign-in and `gradexp login` (docs/protocol.md, "Auth" and "Login") -----------
SESSION_COOKIE: Final = "gradexp_session"  # HttpOnly: the browser's session
CSRF_COOKIE: Final = "gradexp_csrf"  # readable by the page: the value to send as CSRF_HEADER
CSRF_HEADER: Final = "X-CSRF-Token"  # required with a session cookie on any non-GET/HEAD
AUTHORIZE_PATH: Final = "/authorize"  # the consent page `gradexp login` opens
TOKEN_PATH: Final = API_PREFIX + "/auth/token"  # code + PKCE verifier -> a new API key
KEYS_PAGE_PATH: Final = "/keys"  # where a person creates and revokes keys

# --- run file --------------------------------------------------------------------------
RUNFILE_NAME: Final = "run.gxr"
RUNFILE_MAGIC: Final = b"GRADEXP\x00RUN\x00"  # 12 bytes, then a u32 format version
RUNFILE_VERSION: Final = 1
RUN_META_NAME: Final = "run.json"
ACK_NAME: Final = "ack.json"
FILES_DIR: Final = "files"
LATEST_RUN_LINK: Final = "latest-run"

# Record types: the JSON ``type`` field and the frame's type byte.
RECORD_TYPES: Final[dict[str, int]] = {
    "history": 1,
    "config": 2,
    "summary": 3,
    "file": 4,
    "finish": 5,
    "telemetry": 6,
    "metric": 7,
    "alert": 8,
    # What the machine did (docs/protocol.md): time-based series, console lines, and the
    # run's environment. Each may carry the writer's ``rank`` (default 0).
    "system": 9,
    "console": 10,
    "environment": 11,
    # A versioned artifact logged or used by the run (docs/protocol.md, "Artifacts").
    "artifact": 12,
}
RECORD_TYPE_NAMES: Final[dict[int, str]] = {v: k for k, v in RECORD_TYPES.items()}

# --- limits (the server enforces them; the SDK stays well inside) ---------------------
MAX_BODY_BYTES: Final = 32 * 1024 * 1024  # a request body as sent
MAX_DECOMPRESSED_BYTES: Final = 256 * 1024 * 1024  # after gunzip: past this it is a bomb
MAX_BLOB_BYTES: Final = 4 * 1024 * 1024 * 1024
MAX_KEY_LENGTH: Final = 256
MAX_HISTOGRAM_BINS: Final = 512
MAX_GALLERY_IMAGES: Final = 512  # images in one "gallery" value (a list logged under a key)
MAX_TABLE_ROWS: Final = 100_000  # rows of one "table" value
MAX_TABLE_COLUMNS: Final = 1_000  # columns of one "table" value
MAX_TABLE_IMAGES: Final = 10_000  # image cells of one "table" value
MAX_TABLE_BYTES: Final = 64 * 1024 * 1024  # a table's file, as JSON
#: The column types of a "table" value ("mixed": cells of several kinds; "null": only nulls).
TABLE_COLUMN_TYPES: Final = ("number", "string", "bool", "image", "mixed", "null")
MAX_ALERT_TITLE: Final = 256  # characters of an alert's title
MAX_ALERT_TEXT: Final = 8192  # ... and of its text
ALERT_LEVELS: Final = ("INFO", "WARN", "ERROR")

# --- what the machine did (docs/protocol.md, records "system", "console", "environment") --
MAX_CONSOLE_LINE: Final = 16 * 1024  # characters of one console line; the SDK cuts longer ones
MAX_CONSOLE_LINES: Final = 1000  # lines in one console record
MAX_SYSTEM_KEYS: Final = 256  # values in one system record
MAX_ENVIRONMENT_BYTES: Final = 256 * 1024  # one environment record, as JSON
#: A console line's id: ``seq << CONSOLE_ID_SHIFT | index`` of the record that first held it.
CONSOLE_ID_SHIFT: Final = 16

STAT_SEPARATOR: Final = "#"  # histogram statistic series: "<key>#<stat>"

# Statistics carried by histogram and tensor values, in a stable order.
HISTOGRAM_STATS: Final = (
    "min",
    "max",
    "mean",
    "std",
    "norm",
    "count",
    "nan",
    "inf",
    "ninf",
    "zeros",
)
