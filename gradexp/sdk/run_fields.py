"""A run's own fields (name, notes, tags, group, job_type): read, set and recorded.

``init()`` sends them with the run; setting one later (``run.notes = "..."``) records the
change like a config change: a ``config`` record whose ``run`` object holds the new
values (docs/protocol.md), written to the run file and uploaded, so offline runs and
``gradexp sync`` carry it too and the server shows the new value.

:class:`RunFields` is a base class of :class:`gradexp.sdk.run.Run`; the checks are the
server's (``validate_run_body``), so a value accepted here is accepted there.
"""

from __future__ import annotations

from gradexp.errors import GradexpError
from gradexp.stream.channel import RUN_FIELDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FIELDS", "RunFields", "check_field"]

#: The fields a script may set after init(), and the most characters each may hold.
FIELDS: dict[str, int] = {"name": 256, "notes": 1_000_000, "group": 256, "job_type": 64}
MAX_TAG = 128


def check_field(field: str, value: Any) -> Any:
    """``value`` as the run's ``field`` holds it, or GradexpError saying what is wrong."""
    if field == "tags":
        if value is None:
            return []
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise GradexpError(f"tags must be a list of strings, not {type(value).__name__}.")
        tags = [str(t) for t in value]
        if not all(0 < len(t) <= MAX_TAG for t in tags):
            raise GradexpError(f"each tag must be 1-{MAX_TAG} characters long.")
        return list(dict.fromkeys(tags))
    if value is None:
        if field == "name":
            raise GradexpError("a run's name cannot be None; give it a non-empty string.")
        return None
    text = str(value)
    if field == "name" and not text:
        raise GradexpError("a run's name cannot be empty.")
    limit = FIELDS[field]
    if len(text) > limit:
        raise GradexpError(f"{field} is at most {limit} characters (got {len(text)}).")
    return text


class RunFields:
    """The settable fields of a run; each assignment is recorded (see the module docstring).

    The subclass provides ``_fields`` (the current values, set up by ``init()``) and
    ``_control(kind, body)`` (queues a record on the run's channel).
    """

    _fields: dict[str, Any]

    def _control(self, kind: int, body: Any) -> None:  # provided by Run
        raise NotImplementedError

    def _set_field(self, field: str, value: Any) -> None:
        value = check_field(field, value)
        self._fields[field] = value
        self._control(RUN_FIELDS, {field: value})

    @property
    def name(self) -> str:
        """The display name (``bright-fox-12`` unless given); settable, and recorded."""
        return str(self._fields["name"])

    @name.setter
    def name(self, value: str) -> None:
        self._set_field("name", value)

    @property
    def notes(self) -> str | None:
        """Free text about the run; settable (``run.notes = "..."``), and recorded."""
        value = self._fields.get("notes")
        return None if value is None else str(value)

    @notes.setter
    def notes(self, value: str | None) -> None:
        self._set_field("notes", value)

    @property
    def tags(self) -> tuple[str, ...]:
        """The run's tags. Set a new list to change them (``run.tags = [*run.tags, "x"]``);
        a tuple, so that changing them in place (which could not be recorded) is an error."""
        return tuple(self._fields.get("tags") or ())

    @tags.setter
    def tags(self, value: list[str] | tuple[str, ...] | None) -> None:
        self._set_field("tags", value)

    @property
    def group(self) -> str | None:
        """The group the run belongs to (runs of one experiment); settable, and recorded."""
        value = self._fields.get("group")
        return None if value is None else str(value)

    @group.setter
    def group(self, value: str | None) -> None:
        self._set_field("group", value)

    @property
    def job_type(self) -> str | None:
        """What kind of job the run is (``train``, ``eval``...); settable, and recorded."""
        value = self._fields.get("job_type")
        return None if value is None else str(value)

    @job_type.setter
    def job_type(self, value: str | None) -> None:
        self._set_field("job_type", value)
