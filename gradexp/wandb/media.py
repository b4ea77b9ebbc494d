"""wandb's media types that gradexp does not store (video, audio, HTML, 3-D objects,
molecules, Plotly figures): constructing one says so once, and ``wandb.log`` leaves such
values out (the rest of the call is logged). Images, histograms and tables are stored.
"""

from __future__ import annotations

from gradexp.wandb.term import _once

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Audio", "Html", "Molecule", "Object3D", "Plotly", "Unsupported", "Video"]


class Unsupported:
    """A value of a wandb media type that gradexp does not store."""

    kind = "media"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _once(
            f"media-{self.kind}",
            f"wandb.{self.kind} values are not stored by gradexp: log() leaves them out "
            "(the other keys of the call are logged). Images, histograms and tables are stored.",
        )

    def __repr__(self) -> str:
        return f"<wandb.{self.kind}: not stored by gradexp>"


class Video(Unsupported):
    kind = "Video"


class Audio(Unsupported):
    kind = "Audio"


class Html(Unsupported):
    kind = "Html"


class Object3D(Unsupported):
    kind = "Object3D"


class Molecule(Unsupported):
    kind = "Molecule"


class Plotly(Unsupported):
    kind = "Plotly"
