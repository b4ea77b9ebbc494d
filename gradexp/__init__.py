"""gradexp: experiment tracking for metrics, histograms and tensors.

The public surface, and nothing else::

    import gradexp

    run = gradexp.init(project="mnist", config={"lr": 1e-3})
    for step in range(1000):
        gradexp.log({"loss": loss, "acc": acc})
    gradexp.finish()

Everything is loaded lazily (PEP 562): ``import gradexp`` reads this file and the shared
protocol constants, and nothing heavy (no numpy, no aiohttp, no torch) until a name is
first used. To export a new name, add one line to ``_LAZY`` below.
"""

from __future__ import annotations

import importlib

from gradexp._protocol import VERSION as __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds
if TYPE_CHECKING:  # for type checkers and IDEs only; never imported at run time
    from typing import Any

    from gradexp._images import Image as Image
    from gradexp._login import login as login
    from gradexp._run import Run as Run
    from gradexp._run import aflush as aflush
    from gradexp._run import alog as alog
    from gradexp._run import finish as finish
    from gradexp._run import flush as flush
    from gradexp._run import init as init
    from gradexp._run import log as log
    from gradexp._settings import Settings as Settings
    from gradexp._tensors import Histogram as Histogram
    from gradexp._tensors import Tensor as Tensor
    from gradexp.integrations.torch import unwatch as unwatch
    from gradexp.integrations.torch import watch as watch

# public name -> "module:attribute" (or "module" for a submodule)
_LAZY: dict[str, str] = {
    # the SDK core
    "init": "gradexp._run:init",
    "log": "gradexp._run:log",
    "alog": "gradexp._run:alog",
    "flush": "gradexp._run:flush",
    "aflush": "gradexp._run:aflush",
    "finish": "gradexp._run:finish",
    "Run": "gradexp._run:Run",
    "Settings": "gradexp._settings:Settings",
    "runfile": "gradexp.runfile",
    # tensors (gradexp._tensors imports numpy; integrations.torch imports torch only when called)
    "Histogram": "gradexp._tensors:Histogram",
    "Tensor": "gradexp._tensors:Tensor",
    "Image": "gradexp._images:Image",
    "watch": "gradexp.integrations.torch:watch",
    "unwatch": "gradexp.integrations.torch:unwatch",
    # login (loaded on first use; it imports click and urllib)
    "login": "gradexp._login:login",
    # reading runs back (issue 3)
    "Api": "gradexp._api:Api",
}

__all__ = ["__version__", "run", *_LAZY]


def __getattr__(name: str) -> Any:
    # ``gradexp.run`` is the current run (or None): looked up on every access, never cached.
    if name == "run":
        from gradexp._run import current_run

        return current_run()
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'gradexp' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
