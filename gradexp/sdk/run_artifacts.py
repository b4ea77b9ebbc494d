"""``run.log_artifact`` and ``run.use_artifact``: an artifact record in the run, and the
server's copy of a version when one is used.

Logging writes an ``artifact`` record (action ``log``) through the run file; the stream's
uploader sends the bytes the server lacks before the record (``gradexp.transport.artifacts``),
and the server makes the version when it commits the record. Using one asks the server
now (online) which version ``name:alias`` is, records that exact version as used (action
``use``) and returns it, ready to ``download()``. Offline, the reference is recorded as
given and resolved by the server when the run is synced.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from gradexp.errors import GradexpError
from gradexp.protocol.artifacts import artifact_name_problem, parse_ref, version_number
from gradexp.sdk.artifacts import Artifact, _q
from gradexp.stream.channel import ARTIFACT

# The run is typed as Any here: gradexp.sdk.run imports this module (no cycle back).
Run = Any

__all__ = ["log_artifact", "use_artifact"]

#: Where a run keeps the files written with ``Artifact.new_file`` once they are logged.
STAGING_DIR = "artifacts"


def log_artifact(
    run: Run,
    artifact: Artifact | str | os.PathLike[str],
    name: str | None = None,
    type: str | None = None,
    aliases: Sequence[str] | None = None,
) -> Artifact:
    """See :meth:`gradexp.Run.log_artifact`."""
    if not isinstance(artifact, Artifact):
        path = os.fspath(artifact)
        artifact = Artifact(name or _default_name(path), type or "unspecified")
        if os.path.isdir(path):
            artifact.add_dir(path)
        else:
            artifact.add_file(path)
    if isinstance(aliases, str):
        aliases = [aliases]
    if run.mode == "disabled":
        artifact._frozen = True
        return artifact
    record = artifact._log_record(list(aliases or ()), os.path.join(run.dir, STAGING_DIR))
    run._control(ARTIFACT, record)
    artifact._waiter = lambda timeout: _wait(run, artifact, timeout)
    return artifact


def _wait(run: Run, artifact: Artifact, timeout: float | None) -> None:
    """Artifact.wait() for a logged artifact: flush the run, then read the version back."""
    if run.mode != "online":
        raise GradexpError(
            f"artifact {artifact.name} was logged by an {run.mode} run: its version is "
            "known once the run is synced (gradexp sync)."
        )
    if not run.flush(timeout):
        raise GradexpError(
            f"artifact {artifact.name} is not on the server yet (the upload did not finish "
            "in time, or stopped: see the message printed)."
        )
    from gradexp.sdk.api import Api

    api = Api(run.settings.base_url, run.settings.api_key)
    owner = api.viewer()["user"]["name"]
    path = f"/projects/{_q(owner)}/{_q(run.project)}/artifacts/{_q(artifact.name)}"
    artifact._load(api, owner, run.project, api._get(f"{path}/{artifact.digest}"))


def _default_name(path: str) -> str:
    base = os.path.basename(os.path.normpath(path))
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in base).lstrip(".")
    return cleaned or "artifact"


def use_artifact(run: Run, ref: Artifact | str, type: str | None = None) -> Artifact:
    """See :meth:`gradexp.Run.use_artifact`."""
    if isinstance(ref, Artifact):
        if ref.digest is None:
            raise GradexpError(
                f"artifact {ref.name} has no version yet: log it first, or use it by name."
            )
        name, which = ref.name, ref.digest
    else:
        name, which = parse_ref(str(ref))
    if "/" in name:  # owner/project/name: this run's project only
        name = name.rsplit("/", 1)[1]
    problem = artifact_name_problem(name)
    if problem is not None:
        raise GradexpError(f"artifact name {name!r} {problem}.")
    if run.mode != "online":
        art = Artifact(name, type or "unspecified")
        art.version = f"v{version_number(which)}" if version_number(which) is not None else None
        art.aliases = [] if art.version else [which]
        art._frozen = True
        if run.mode == "offline":
            run._control(
                ARTIFACT, {"action": "use", "name": name, "ref": which, "time": time.time()}
            )
        return art

    from gradexp.sdk.api import Api

    api = Api(run.settings.base_url, run.settings.api_key)
    owner = api.viewer()["user"]["name"]
    doc = api._get(f"/projects/{_q(owner)}/{_q(run.project)}/artifacts/{_q(name)}/{_q(which)}")
    if type is not None and doc["type"] != type:
        raise GradexpError(f"artifact {name}:{which} is of type {doc['type']!r}, not {type!r}.")
    art = Artifact._from_server(api, owner, run.project, doc)
    run._control(ARTIFACT, {"action": "use", "name": name, "ref": art.digest, "time": time.time()})
    return art
