"""Which rank of a distributed job this process is, and the run id the job's ranks share.

A launcher (``torchrun``, ``torch.distributed.launch``, DeepSpeed, Accelerate, SLURM with
``srun`` and a script that sets them) gives each process ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``. Under one, every rank's ``init()`` attaches to one run: rank 0 is its
primary writer and the others its further writers (docs/distributed.md).

The ranks never talk to each other to agree on the run id (``init()`` may come before
the process group, and must not wait on it): each derives the same id from what the
launcher gave them all. In order: ``GRADEXP_RUN_ID`` or ``init(id=...)``; torchrun's
``TORCHELASTIC_RUN_ID`` (unique per job unless the user set ``--rdzv-id`` to reuse one);
a scheduler's job id (SLURM, PBS, LSF); on one node, torchrun's per-launch error-file
folder. The id is a hash of the source, the job id and the project, so two projects (or
two users' jobs with one ``--rdzv-id``) never collide.

This module is imported by ``init()``: standard library only, cheap.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["RANKS_MODES", "Writer", "job_run_id", "writer_from_env"]

RANKS_MODES: tuple[str, ...] = ("all", "zero")

# (environment variable, what it is) of a job id every rank of a job sees alike.
_JOB_IDS: tuple[tuple[str, str], ...] = (
    ("TORCHELASTIC_RUN_ID", "torchelastic"),
    ("SLURM_JOB_ID", "slurm"),
    ("PBS_JOBID", "pbs"),
    ("LSB_JOBID", "lsf"),
)


class Writer:
    """This process's place in a distributed job: ``rank`` of ``world_size``."""

    __slots__ = ("local_rank", "rank", "world_size")

    def __init__(self, rank: int, world_size: int, local_rank: int) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank

    def as_meta(self) -> dict[str, int]:
        """What the run's metadata (and the PUT's ``writer``) says of it."""
        return {"rank": self.rank, "world_size": self.world_size, "local_rank": self.local_rank}


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    return int(value) if value.isdigit() else None


def writer_from_env(env: Mapping[str, str] | None = None) -> Writer | None:
    """This process's rank under a launcher that set ``RANK`` and ``WORLD_SIZE`` (more
    than one process); None otherwise."""
    env = os.environ if env is None else env
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    if rank is None or world is None or world < 2 or rank >= world:
        return None
    local = _int(env, "LOCAL_RANK")
    return Writer(rank, world, local if local is not None else rank)


def job_run_id(project: str, env: Mapping[str, str] | None = None) -> str | None:
    """The run id every rank of this job derives alike; None when nothing the launcher
    set tells this job apart (set ``GRADEXP_RUN_ID`` then)."""
    env = os.environ if env is None else env
    source = None
    for name, what in _JOB_IDS:
        value = env.get(name, "").strip()
        if value and value != "none":  # torchrun's default id of a static rendezvous
            source = f"{what}:{value}"
            if what == "slurm":
                source += f".{env.get('SLURM_STEP_ID', '')}"
            break
    if source is None:
        # One node: the agent's folder for this launch holds every local rank's error file.
        error_file = env.get("TORCHELASTIC_ERROR_FILE", "")
        if error_file and _int(env, "LOCAL_WORLD_SIZE") == _int(env, "WORLD_SIZE"):
            source = "torchelastic-dir:" + os.path.dirname(
                os.path.dirname(os.path.dirname(error_file))
            )
    if source is None:
        return None
    import hashlib  # only under a launcher: off the plain init()'s import path

    attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0")
    digest = hashlib.sha256(f"{project}\0{source}\0{attempt}".encode()).hexdigest()
    # 12 base-36-like characters: lowercase hex is a valid run id and plenty unique.
    return "job-" + digest[:16]
