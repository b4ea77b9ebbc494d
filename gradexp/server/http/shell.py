"""The web UI's page shell: ``static/index.html`` with its versioned asset URLs filled in.

Every page path answers with this one small HTML document; the JavaScript reads the path
and draws the page from the read API. It names its assets under a version folder,
``/assets/v<hash>/...``, where ``<hash>`` digests every asset file, so a new release
changes every URL at once (see ``gradexp.server.http.static``).
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS_DIR = STATIC_DIR / "assets"
INDEX_FILE = STATIC_DIR / "index.html"


def _asset_version(root: Path) -> str:
    """A short digest of every asset's path and bytes: the cache-busting folder name."""
    digest = hashlib.sha256()
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return "v" + digest.hexdigest()[:12]


class Shell:
    """The page shell with the asset URLs filled in, computed once per process."""

    def __init__(self, index: Path = INDEX_FILE, assets: Path = ASSETS_DIR) -> None:
        self.version = _asset_version(assets)
        base = f"/assets/{self.version}"
        # Every module is announced up front, so the browser fetches them all at once
        # instead of discovering the import graph one level per round trip.
        modules = sorted(p.relative_to(assets).as_posix() for p in assets.rglob("*.js"))
        preload = "\n".join(f'<link rel="modulepreload" href="{base}/{m}">' for m in modules)
        template = index.read_text(encoding="utf-8")
        self.template = template.replace("{{modulepreload}}", preload).replace("{{assets}}", base)

    def render(self, fetches: list[str]) -> bytes:
        """The shell, with ``<link rel=preload>`` for API reads the page is about to make."""
        links = "\n".join(
            f'<link rel="preload" as="fetch" crossorigin="use-credentials" href="{html.escape(u)}">'
            for u in fetches
        )
        return self.template.replace("{{preload}}", links).encode()
