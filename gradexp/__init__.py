"""gradexp: experiment tracking for metrics, histograms and tensors.

The public surface, and nothing else::

    import gradexp

    run = gradexp.init(project="mnist", config={"lr": 1e-3})
    for step in range(1000):
        gradexp.log({"loss": loss, "acc": acc})
    gradexp.finish()

Everything is loaded lazily (PEP 562): ``import gradexp`` reads this file and
``gradexp/_version.py``, and nothing else (no numpy, no aiohttp, no torch, not even
``typing``) until a name is first used. The names come from the layers below: ``sdk``
(runs, values, login, the read client), ``core`` (settings) and ``errors``. To export a
new name, add one line to ``_LAZY`` below.
"""

from __future__ import annotations

import importlib

from gradexp._version import __version__

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds
if TYPE_CHECKING:  # for type checkers and IDEs only; never imported at run time
    from typing import Any

    from gradexp.core.settings import Settings as Settings
    from gradexp.errors import ApiError as ApiError
    from gradexp.errors import GradexpError as GradexpError
    from gradexp.errors import GradexpWarning as GradexpWarning
    from gradexp.errors import LoginError as LoginError
    from gradexp.integrations.torch import unwatch as unwatch
    from gradexp.integrations.torch import watch as watch
    from gradexp.sdk.artifacts import Artifact as Artifact
    from gradexp.sdk.current import config as config
    from gradexp.sdk.current import summary as summary
    from gradexp.sdk.facade import aflush as aflush
    from gradexp.sdk.facade import alert as alert
    from gradexp.sdk.facade import alog as alog
    from gradexp.sdk.facade import define_metric as define_metric
    from gradexp.sdk.facade import finish as finish
    from gradexp.sdk.facade import flush as flush
    from gradexp.sdk.facade import init as init
    from gradexp.sdk.facade import log as log
    from gradexp.sdk.facade import log_artifact as log_artifact
    from gradexp.sdk.facade import save as save
    from gradexp.sdk.facade import use_artifact as use_artifact
    from gradexp.sdk.login import login as login
    from gradexp.sdk.run import Run as Run
    from gradexp.sdk.values.histogram import Histogram as Histogram
    from gradexp.sdk.values.image import Image as Image
    from gradexp.sdk.values.table import Table as Table
    from gradexp.sdk.values.tensor import Tensor as Tensor

# public name -> "module:attribute" (or "module" for a submodule)
_LAZY: dict[str, str] = {
    # the SDK core
    "init": "gradexp.sdk.facade:init",
    "log": "gradexp.sdk.facade:log",
    "alog": "gradexp.sdk.facade:alog",
    "flush": "gradexp.sdk.facade:flush",
    "aflush": "gradexp.sdk.facade:aflush",
    "finish": "gradexp.sdk.facade:finish",
    "define_metric": "gradexp.sdk.facade:define_metric",
    "alert": "gradexp.sdk.facade:alert",
    "log_artifact": "gradexp.sdk.facade:log_artifact",
    "use_artifact": "gradexp.sdk.facade:use_artifact",
    "Artifact": "gradexp.sdk.artifacts:Artifact",
    "save": "gradexp.sdk.facade:save",
    "Run": "gradexp.sdk.run:Run",
    # the current run's config and summary (one object each, looked up on every use)
    "config": "gradexp.sdk.current:config",
    "summary": "gradexp.sdk.current:summary",
    "Settings": "gradexp.core.settings:Settings",
    "runfile": "gradexp.runfile",
    # rich values (they import numpy; integrations.torch imports torch only when called)
    "Histogram": "gradexp.sdk.values.histogram:Histogram",
    "Tensor": "gradexp.sdk.values.tensor:Tensor",
    "Image": "gradexp.sdk.values.image:Image",
    "Table": "gradexp.sdk.values.table:Table",
    "watch": "gradexp.integrations.torch:watch",
    "unwatch": "gradexp.integrations.torch:unwatch",
    # login (loaded on first use; it imports urllib and http.server)
    "login": "gradexp.sdk.login:login",
    # reading runs back
    "Api": "gradexp.sdk.api:Api",
    # errors (gradexp.errors imports nothing)
    "GradexpError": "gradexp.errors:GradexpError",
    "GradexpWarning": "gradexp.errors:GradexpWarning",
    "LoginError": "gradexp.errors:LoginError",
    "ApiError": "gradexp.errors:ApiError",
}

__all__ = ["__version__", "run", *_LAZY]


def __getattr__(name: str) -> Any:
    # ``gradexp.run`` is the current run (or None): looked up on every access, never cached.
    if name == "run":
        from gradexp.sdk.facade import current_run

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
