"""The public run-file reader: ``from gradexp.runfile import RunFile``.

The format and the code live in :mod:`gradexp.protocol.runfile`; this module re-exports
its public names so that scripts read run files from a stable place (see
``docs/runfile.md``).
"""

from __future__ import annotations

from gradexp.protocol.runfile import (
    HEADER_SIZE,
    Record,
    RunDir,
    RunFile,
    RunFileError,
    RunFileWriter,
    find_run_dirs,
    read_records,
)

__all__ = [
    "HEADER_SIZE",
    "Record",
    "RunDir",
    "RunFile",
    "RunFileError",
    "RunFileWriter",
    "find_run_dirs",
    "read_records",
]
