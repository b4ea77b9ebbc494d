"""Refusals the SDK tells apart (kept light: the run module imports this at startup)."""

from __future__ import annotations

#: ``upload_error`` when the server answered that the run was deleted (410
#: ``run_deleted``): the upload stops for good, and ``gradexp sync`` could not help either.
RUN_DELETED = "the run was deleted on the server"
