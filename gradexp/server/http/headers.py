"""The security headers every response carries, added in one place so no route can forget
them (``on_response_prepare``).

Pages get a Content-Security-Policy that allows only this origin's scripts and styles (no
inline script, no ``unsafe-inline`` or ``unsafe-eval``) and may be framed only by the
settings' ``frame_ancestors`` (a notebook's ``run.display()``); everything else (API
replies, run files) gets ``sandbox`` and ``default-src 'none'``, so a file a user logged as
``text/html`` can never run script on this origin, even if opened directly. A route that
sets its own policy (the sign-in pages) keeps it.
"""

from __future__ import annotations

from aiohttp import web

from gradexp.server.http.state import app_state

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors {ancestors}"
)
# For every non-page response: nothing may load or run if someone opens it as a document.
OTHER_CSP = "default-src 'none'; sandbox; frame-ancestors 'none'"


def _is_page(request: web.Request, response: web.StreamResponse) -> bool:
    ctype = response.headers.get("Content-Type", "")
    return ctype.startswith("text/html") and not request.path.startswith("/api/")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CSP and friends, unless a route set its own."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if "Content-Security-Policy" in headers:
        return
    if _is_page(request, response):
        ancestors = app_state(request).settings.frame_ancestors
        headers["Content-Security-Policy"] = PAGE_CSP.format(ancestors=ancestors)
    elif not request.path.startswith("/assets/"):
        headers["Content-Security-Policy"] = OTHER_CSP
