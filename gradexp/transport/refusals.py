"""How an upload stops for good, and the refusals the SDK tells apart.

Kept light: the run module imports this at startup, and the uploader's modules
(``uploader``, ``run_files``) raise :class:`UploadStopped` from here.
"""

from __future__ import annotations

__all__ = ["RUN_DELETED", "UploadStopped"]

#: ``upload_error`` when the server answered that the run was deleted (410
#: ``run_deleted``): the upload stops for good, and ``gradexp sync`` could not help either.
RUN_DELETED = "the run was deleted on the server"


class UploadStopped(Exception):
    """The server refused the run for good (a 4xx other than 408/429): upload stopped."""
