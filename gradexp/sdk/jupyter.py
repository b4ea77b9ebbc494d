"""Notebook support: show a run as a link when ``init()`` runs in a Jupyter kernel.

``init()`` calls :func:`display_run` only when ``"IPython"`` is already in ``sys.modules``,
so a plain script never imports IPython. Everything else works in a notebook as is:
``log()`` never touches the kernel's event loop, ``await gradexp.alog(...)`` runs on it
(IPython's autoawait), and re-running the ``init()`` cell finishes the previous run first.
"""

from __future__ import annotations

import html
import sys
from typing import Any


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def run_html(run: Any) -> str:
    """The HTML shown for a run: its name, id and a link (or where it is saved offline)."""
    name = html.escape(str(run.name))
    rid = html.escape(str(run.id))
    if run.url and run.mode == "online":
        url = html.escape(run.url, quote=True)
        target = f'<a href="{url}" target="_blank" rel="noopener">{url}</a>'
        return f"<div>gradexp run <b>{name}</b> (<code>{rid}</code>): {target}</div>"
    if run.mode == "disabled":
        return (
            f"<div>gradexp run <b>{name}</b> (<code>{rid}</code>): disabled, nothing is saved</div>"
        )
    where = html.escape(str(run.dir))
    return (
        f"<div>gradexp run <b>{name}</b> (<code>{rid}</code>), {html.escape(run.mode)}: "
        f"saved in <code>{where}</code>; upload it with <code>gradexp sync</code></div>"
    )


def display_run(run: Any) -> None:
    """Display the run as HTML in a notebook; does nothing elsewhere. Never raises."""
    if run.mode == "disabled" or not in_notebook():
        return
    try:
        from IPython.display import HTML, display

        display(HTML(run_html(run)))
    except Exception:  # a display problem must never stop init()
        pass


DEFAULT_EMBED_HEIGHT = 720


def embed_url(run: Any) -> str | None:
    """The run page in embed mode (no top bar), or None when the run has no page."""
    if not run.url or run.mode != "online":
        return None
    return f"{run.url}?embed=1"


def embed_html(run: Any, height: int = DEFAULT_EMBED_HEIGHT) -> str:
    """The live run page in an iframe, with a link to open it in its own tab.

    The frame shows the page with the browser's own session on the server: it draws when
    that browser is signed in there and the notebook is on the same site (both on
    ``localhost``, say); otherwise the frame offers a sign-in link that opens a new tab.
    """
    src = embed_url(run)
    if src is None:
        return run_html(run)
    frame_src = html.escape(src, quote=True)
    url = html.escape(run.url, quote=True)
    name = html.escape(str(run.name))
    return (
        f'<div><iframe src="{frame_src}" title="gradexp run {name}" width="100%" '
        f'height="{int(height)}" style="border: 1px solid #e3e6eb; border-radius: 8px" '
        'loading="lazy" referrerpolicy="same-origin"></iframe>'
        f'<div style="font-size: 12px">gradexp run <b>{name}</b>: '
        f'<a href="{url}" target="_blank" rel="noopener">open in a new tab</a></div></div>'
    )


def display_embedded(run: Any, height: int = DEFAULT_EMBED_HEIGHT) -> None:
    """``run.display()``: embed the live page in the notebook (a link outside one)."""
    if run.mode == "disabled":
        return
    if not in_notebook():
        print(f"gradexp run {run.name}: {run.url or run.dir}")
        return
    from IPython.display import HTML, display

    display(HTML(embed_html(run, height)))
