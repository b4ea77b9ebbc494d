"""The HTML of the sign-in, setup, authorize and keys pages, rendered here with escaping.

Every value that reaches a page goes through :func:`h` (``html.escape``), and no page has an
inline script or style: the styles and the little script live in ``static/auth/``, so the
pages run under a Content-Security-Policy without ``'unsafe-inline'``. Pages carry their
own CSP, deny framing (a sign-in or Authorize button inside someone else's frame is a
clickjacking target) and send a Referer only to this origin (a setup link has a token in
its URL; "no-referrer" would also make browsers send `Origin: null`, which the forms refuse).
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from gradexp.protocol.wire import VERSION

ASSET_PREFIX = "/static/auth"

# form-action: Chrome applies it to the redirect that follows a form post too, so the
# authorize page must allow the CLI's loopback listener as well as this origin.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'{form_extra}; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def h(value: Any) -> str:
    """Escape a value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


MARK = (
    '<svg class="mark" viewBox="0 0 32 32" aria-hidden="true">'
    '<rect width="32" height="32" rx="8" fill="#1e3a8a"/>'
    '<path d="M6 23 L11 17 L15 20 L20 11 L26 8" fill="none" stroke="#93c5fd" '
    'stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/>'
    '<path d="M6 26 H26" stroke="#3b82f6" stroke-width="1.6" stroke-linecap="round"/></svg>'
)

ICONS = {
    "terminal": (
        '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="2.5" y="4" width="19" height="16" '
        'rx="3" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M7 9.5l3 2.5-3 '
        '2.5M12.5 15h4.5" fill="none" stroke="currentColor" stroke-width="1.6" '
        'stroke-linecap="round" stroke-linejoin="round"/></svg>'
    ),
    "check": (
        '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="10" '
        'fill="currentColor" opacity=".14"/><path d="M7.5 12.5l3 3 6-7" fill="none" '
        'stroke="currentColor" stroke-width="2" stroke-linecap="round" '
        'stroke-linejoin="round"/></svg>'
    ),
    "alert": (
        '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="10" '
        'fill="currentColor" opacity=".14"/><path d="M12 7v6M12 16.5v.5" fill="none" '
        'stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>'
    ),
    "info": (
        '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="10" '
        'fill="currentColor" opacity=".14"/><path d="M12 11v6M12 7.5v.5" fill="none" '
        'stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>'
    ),
    "key": (
        '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="8" cy="14" r="4" fill="none" '
        'stroke="currentColor" stroke-width="1.6"/><path d="M11 11l8-8M16 6l2.5 2.5M14 8l2 2" '
        'fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round"/></svg>'
    ),
    "dots": (
        '<svg viewBox="0 0 40 8" aria-hidden="true"><circle cx="4" cy="4" r="2" '
        'fill="currentColor"/><circle cx="20" cy="4" r="2" fill="currentColor"/>'
        '<circle cx="36" cy="4" r="2" fill="currentColor"/></svg>'
    ),
}


def page(
    title: str,
    body: str,
    *,
    status: int = 200,
    wide: bool = False,
    topbar: str = "",
    host: str = "",
    form_extra: str = "",
) -> web.Response:
    """A whole page: the layout around ``body`` (already-escaped HTML), with its headers."""
    foot = f"gradexp server {h(VERSION)}" + (f" · {h(host)}" if host else "")
    layout = "wide" if wide else "narrow"
    brand = "" if topbar else f'<a class="brand" href="/">{MARK}<span>gradexp</span></a>'
    document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<meta name="referrer" content="same-origin">
<title>{h(title)} · gradexp</title>
<link rel="icon" href="{ASSET_PREFIX}/mark.svg" type="image/svg+xml">
<link rel="stylesheet" href="{ASSET_PREFIX}/auth.css">
<script src="{ASSET_PREFIX}/auth.js" defer></script>
</head>
<body class="{layout}">
{topbar}
<main class="shell">
{brand}
{body}
<footer class="foot">{foot}</footer>
</main>
</body>
</html>
"""
    resp = web.Response(text=document, status=status, content_type="text/html", charset="utf-8")
    resp.headers["Content-Security-Policy"] = _CSP.format(form_extra=form_extra)
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def notice(kind: str, text: str) -> str:
    """An alert line: ``kind`` is ``error``, ``info`` or ``ok``; ``text`` is plain text."""
    icon = {"error": ICONS["alert"], "info": ICONS["info"]}.get(kind, ICONS["check"])
    role = "alert" if kind == "error" else "status"
    return f'<div class="notice {kind}" role="{role}">{icon}<span>{h(text)}</span></div>'


def hidden(fields: Mapping[str, Any]) -> str:
    """Hidden form inputs."""
    return "".join(
        f'<input type="hidden" name="{h(k)}" value="{h(v)}">'
        for k, v in fields.items()
        if v is not None
    )


def sign_out_form(
    csrf: str, label: str = "Sign out", css: str = "linkish", next_path: str | None = None
) -> str:
    """A POST form that signs out (a link would let any site sign you out); ``next_path``:
    where the sign-in that follows should lead (the authorize page, for "Not you?")."""
    return (
        f'<form method="post" action="/logout" class="inline">'
        f"{hidden({'csrf': csrf, 'next': next_path})}"
        f'<button type="submit" class="{css}">{h(label)}</button></form>'
    )


# --- the pages ---------------------------------------------------------------------------


def sign_in(
    *,
    csrf: str,
    next_path: str,
    username: str = "",
    error: str | None = None,
    info: str | None = None,
    purpose: str | None = None,
    host: str = "",
    status: int = 200,
) -> web.Response:
    """Username and password."""
    lead = h(purpose) if purpose else f"to your account at <b>{h(host)}</b>"
    alert = notice("error", error) if error else notice("info", info) if info else ""
    body = f"""<section class="card">
<h1>Sign in</h1>
<p class="lead">{lead}</p>
{alert}
<form method="post" action="/login" class="stack" data-once>
{hidden({"csrf": csrf, "next": next_path})}
<label>User name
<input name="username" value="{h(username)}" autocomplete="username" autocapitalize="none"
 spellcheck="false" required maxlength="128"{"" if username else " autofocus"}></label>
<label>Password
<input type="password" name="password" autocomplete="current-password" required
 maxlength="1024"{" autofocus" if username else ""}></label>
<button class="btn primary block" type="submit">Sign in</button>
</form>
<p class="fine">No account yet? The server's admin makes one with
<code>gradexp server user add NAME</code>.</p>
</section>"""
    return page("Sign in", body, host=host, status=status)


def authorize(
    *,
    user: str,
    client: str,
    fields: Mapping[str, Any],
    csrf: str,
    host: str,
    here: str,
) -> web.Response:
    """The consent screen of ``gradexp login`` (``here``: this page's path and query)."""
    body = f"""<section class="card">
<div class="handshake" aria-hidden="true"><span class="tile">{ICONS["terminal"]}</span>
<span class="dots">{ICONS["dots"]}</span><span class="tile brandtile">{MARK}</span></div>
<h1 class="center">Authorize gradexp login</h1>
<p class="lead center">The command line on <b>{h(client)}</b> asks to use your account.</p>
<dl class="facts">
<div><dt>Account</dt><dd>{h(user)}</dd></div>
<div><dt>Machine</dt><dd>{h(client)}</dd></div>
<div><dt>Server</dt><dd>{h(host)}</dd></div>
<div><dt>Access</dt><dd>A new API key named <b>{h(client)}</b>: it logs runs and reads your projects.</dd></div>
</dl>
<form method="post" action="/authorize" data-once>
{hidden({**fields, "csrf": csrf})}
<div class="actions">
<button class="btn" type="submit" name="decision" value="deny">Cancel</button>
<button class="btn primary" type="submit" name="decision" value="allow" autofocus>Authorize</button>
</div>
</form>
<p class="fine">Only authorize if you just ran <code>gradexp login</code> yourself. You can
revoke the key at any time on your <a href="/keys">API keys</a> page.</p>
<div class="whoami">Signed in as <b>{h(user)}</b> · {sign_out_form(csrf, "Not you? Sign out", next_path=here)}</div>
</section>"""
    return page("Authorize", body, host=host, form_extra=" http://127.0.0.1:*")


def message(
    title: str,
    text: str,
    *,
    kind: str = "error",
    action: tuple[str, str] | None = None,
    detail: str = "",
    host: str = "",
    status: int = 200,
) -> web.Response:
    """A card with one message (and one way forward)."""
    icon = ICONS["check"] if kind == "ok" else ICONS["alert"]
    button = (
        f'<a class="btn primary block" href="{h(action[1])}">{h(action[0])}</a>' if action else ""
    )
    extra = f'<p class="fine center">{detail}</p>' if detail else ""
    body = f"""<section class="card">
<div class="bigicon {kind}">{icon}</div>
<h1 class="center">{h(title)}</h1>
<p class="lead center">{h(text)}</p>
{button}
{extra}
</section>"""
    return page(title, body, host=host, status=status)


def setup(
    *, token: str, csrf: str, host: str, username: str = "", error: str | None = None
) -> web.Response:
    """Create the server's first account."""
    alert = notice("error", error) if error else ""
    body = f"""<section class="card">
<h1>Welcome to gradexp</h1>
<p class="lead">Create the first account on <b>{h(host)}</b>. You will sign in with it, and
the runs you log will belong to it.</p>
{alert}
<form method="post" action="/setup" class="stack" data-once>
{hidden({"token": token, "csrf": csrf})}
<label>User name
<input name="username" value="{h(username)}" autocomplete="username" autocapitalize="none"
 spellcheck="false" required maxlength="128" pattern="[A-Za-z0-9][A-Za-z0-9._\\-]*"
 title="Letters, digits, '.', '_' or '-'" autofocus></label>
<label><span class="labelrow">Password <span class="aside">at least 8 characters</span></span>
<input type="password" name="password" autocomplete="new-password" required minlength="8"
 maxlength="1024"></label>
<label>Password again
<input type="password" name="confirm" autocomplete="new-password" required minlength="8"
 maxlength="1024" data-match="password"></label>
<button class="btn primary block" type="submit">Create account</button>
</form>
<p class="fine">This link works once. Add more people later with
<code>gradexp server user add NAME</code>.</p>
</section>"""
    return page("Set up", body, host=host, status=400 if error else 200)


def login_link(*, token: str, csrf: str, user: str, host: str, next_path: str) -> web.Response:
    """Confirm a one-time sign-in link (a GET must not sign in: link previewers follow GETs)."""
    body = f"""<section class="card">
<h1 class="center">Sign in as {h(user)}</h1>
<p class="lead center">This one-time link signs you in to gradexp at <b>{h(host)}</b>.</p>
<form method="post" action="/login/link" data-once>
{hidden({"token": token, "csrf": csrf, "next": next_path})}
<button class="btn primary block" type="submit" autofocus>Continue as {h(user)}</button>
</form>
</section>"""
    return page("Sign in", body, host=host)


def _when(t: float | None, now: float) -> str:
    if t is None:
        return '<span class="muted">never</span>'
    absolute = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))
    ago = max(0.0, now - t)
    if ago < 60:
        rel = "just now"
    elif ago < 3600:
        rel = f"{int(ago // 60)} min ago"
    elif ago < 86400:
        rel = f"{int(ago // 3600)} h ago"
    elif ago < 30 * 86400:
        days = int(ago // 86400)
        rel = f"{days} day{'s' if days != 1 else ''} ago"
    else:
        rel = time.strftime("%Y-%m-%d", time.gmtime(t))
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return f'<time datetime="{iso}" title="{h(absolute)}">{h(rel)}</time>'


def topbar(user: str, csrf: str) -> str:
    """The bar above the keys page: the web UI's own top bar (brand, breadcrumb back to the
    projects, who is signed in, sign out), so the keys page reads as part of the app."""
    return f"""<header class="topbar">
<a class="brand" href="/">{MARK}<span>gradexp</span></a>
<nav class="crumbs" aria-label="Breadcrumb"><a href="/">Projects</a>\
<span class="crumb-sep">/</span><span class="crumb-here" aria-current="page">API keys</span></nav>
<div class="topbar-right"><span class="viewer" title="Signed in">{h(user)}</span>\
{sign_out_form(csrf, "Sign out", "topbar-link")}</div>
</header>"""


def keys(
    *,
    user: str,
    csrf: str,
    rows: Iterable[Mapping[str, Any]],
    host: str,
    new_key: tuple[str, str] | None = None,
    flash: str | None = None,
    error: str | None = None,
    welcome: bool = False,
    status: int = 200,
) -> web.Response:
    """The user's API keys: list, create, revoke."""
    now = time.time()
    items = []
    for k in rows:
        revoked = k.get("revoked_at") is not None
        if revoked:
            state = f'<span class="pill off">revoked {_when(k["revoked_at"], now)}</span>'
        else:
            state = (
                f'<form method="post" action="/keys/{int(k["id"])}/revoke" class="inline" '
                f'data-confirm="Revoke the key &quot;{h(k["name"])}&quot;? Scripts using it stop at once.">'
                f'{hidden({"csrf": csrf})}<button class="btn small danger" type="submit">Revoke</button></form>'
            )
        items.append(
            f'<tr class="{"revoked" if revoked else ""}"><td class="name">{h(k["name"])}</td>'
            f'<td><code class="prefix">{h(k["prefix"])}…</code></td>'
            f"<td>{_when(k['created_at'], now)}</td><td>{_when(k.get('last_used_at'), now)}</td>"
            f'<td class="end">{state}</td></tr>'
        )
    table = (
        '<table class="keys"><thead><tr><th>Name</th><th>Key</th><th>Created</th>'
        '<th>Last used</th><th class="end"><span class="sr">Action</span></th></tr></thead>'
        f"<tbody>{''.join(items)}</tbody></table>"
        if items
        else '<p class="empty">No keys yet. Run <code>gradexp login</code> on a machine, or create one below.</p>'
    )
    banner = ""
    if new_key is not None:
        name, secret = new_key
        banner = f"""<div class="newkey" role="status">
<p><b>New key “{h(name)}”.</b> Copy it now: it is not shown again.</p>
<div class="copyrow"><code id="new-key" class="secret">{h(secret)}</code>
<button class="btn small" type="button" data-copy="new-key">Copy</button></div>
<p class="fine">Paste it when <code>gradexp login</code> asks for a key, or set it as
<code>GRADEXP_API_KEY</code>.</p>
</div>"""
    alerts = (notice("error", error) if error else "") + (notice("ok", flash) if flash else "")
    intro = ""
    if welcome:
        intro = notice("ok", f"Your account {user} is ready.")
    body = f"""<section class="card wide">
{intro}
<div class="cardhead"><span class="headicon">{ICONS["key"]}</span><div>
<h1>API keys</h1>
<p class="lead">Keys let scripts and the command line log runs as <b>{h(user)}</b>.</p></div></div>
{alerts}
{banner}
{table}
<form method="post" action="/keys" class="create" data-once>
{hidden({"csrf": csrf})}
<label class="grow">New key<input name="name" placeholder="e.g. laptop or ci" maxlength="64" required></label>
<button class="btn primary" type="submit">Create key</button>
</form>
</section>
<section class="card wide tip">
<h2>Connect a machine</h2>
<p>On the machine that trains, run this and authorize it in the browser that opens:</p>
<pre><code>pip install gradexp
gradexp login --host {h(host)}</code></pre>
<p class="fine">No browser there (SSH)? Create a key above and paste it when
<code>gradexp login</code> asks. <code>GRADEXP_API_KEY</code> overrides the stored key.</p>
</section>"""
    return page("API keys", body, wide=True, topbar=topbar(user, csrf), host=host, status=status)
