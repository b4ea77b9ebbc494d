"""The login flow behind ``gradexp.login()`` and ``gradexp login`` (``gradexp.cli.login``):
get an API key for a server and keep it in the credentials file, so that every later
script finds it.

The browser flow (RFC 8252, "OAuth for native apps", in miniature):

1. Listen on a random port of 127.0.0.1 for exactly one answer.
2. Open the server's ``/authorize`` page in the browser (Python's ``webbrowser``, so
   ``BROWSER`` is honoured) with that port, a random ``state`` and a PKCE S256 challenge.
3. The person signs in and presses Authorize; the server redirects the browser to
   ``http://127.0.0.1:PORT/callback?code=...&state=...``.
4. The listener checks ``state``, trades code + PKCE verifier for a new API key
   (``POST /api/v1/auth/token``), stores it with mode 0600, and sends the browser on to the
   server's "you are logged in" page.

Where no browser can open (SSH, no display), or nothing comes back in time, it asks for a
key made on the server's keys page instead. ``--key`` skips the browser. Keys are checked
with ``GET /api/v1/viewer`` before they are stored, and never printed in full.

Threads: the listener serves in a daemon thread of its own (``gradexp-login-listener``) and
runs the token exchange there, because the browser waits for its reply; the browser is
opened from another daemon thread (``gradexp-login-browser``) because ``webbrowser`` blocks
until a ``BROWSER`` command exits, and that command may be what drives the redirect. The
calling thread only waits on an ``Event`` and reads the outcome the listener left.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from gradexp.core.credentials import (
    load_credentials,
    mask_key,
    normalize_url,
    save_credentials,
)
from gradexp.core.output import say
from gradexp.core.settings import ENV_API_KEY, ENV_BASE_URL, load_user_settings
from gradexp.errors import LoginError
from gradexp.protocol.wire import API_PREFIX, AUTHORIZE_PATH, KEYS_PAGE_PATH, TOKEN_PATH, VERSION

DEFAULT_HOST = "http://127.0.0.1:8080"  # where a plain `gradexp server` listens
BROWSER_TIMEOUT = 300.0  # seconds to wait for the browser before asking for a key
HTTP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Identity:
    """Who a key signs in as, according to the server."""

    host: str
    user: str
    key_name: str | None = None
    key_prefix: str | None = None


# --- talking to the server ---------------------------------------------------------------


def resolve_host(host: str | None) -> str:
    """The server to log in to: ``host``, else ``GRADEXP_BASE_URL``, else the config's
    ``base_url``, else the last server logged in to, else ``http://127.0.0.1:8080``."""
    for candidate in (
        host,
        os.environ.get(ENV_BASE_URL),
        load_user_settings().get("base_url"),
        load_credentials()["default_host"],
    ):
        if isinstance(candidate, str) and candidate.strip():
            return normalize_url(candidate)
    return DEFAULT_HOST


def _opener(url: str) -> urllib.request.OpenerDirector:
    # A proxy from the environment must not swallow requests to this very machine.
    if urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _unreachable(host: str, exc: BaseException, timeout: float) -> LoginError:
    """One clear line for a server we could not talk to."""
    reason: Any = getattr(exc, "reason", exc)
    name = urlsplit(host).hostname or host
    if isinstance(reason, socket.gaierror):
        return LoginError(
            f"cannot find the server {name!r}: that host name does not resolve; check the URL "
            "(--host)."
        )
    if isinstance(reason, ConnectionRefusedError):
        return LoginError(
            f"cannot connect to {host}: nothing is listening there. Is `gradexp server` running?"
        )
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return LoginError(f"{host} did not answer within {timeout:.0f} s; is the address right?")
    if isinstance(reason, ssl.SSLError):
        return LoginError(f"TLS error talking to {host}: {reason.reason or reason}.")
    text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return LoginError(f"cannot reach {host}: {text}.")


def _http(
    method: str,
    host: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    key: str | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> tuple[int, Any]:
    """One JSON request: ``(status, decoded body or None)``; LoginError if unreachable."""
    headers = {"User-Agent": f"gradexp/{VERSION}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(host + path, data=data, method=method, headers=headers)
    try:
        with _opener(host).open(request, timeout=timeout) as resp:
            status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        status, payload, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
    except (urllib.error.URLError, OSError) as exc:
        raise _unreachable(host, exc, timeout) from None
    if "json" not in ctype:
        return status, None
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, None


def _server_message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"].get("code") or "")
    return ""


def check_server(host: str) -> None:
    """LoginError unless a gradexp server answers at ``host``."""
    status, body = _http("GET", host, "/healthz")
    if status != 200 or not (isinstance(body, dict) and body.get("ok") is True):
        raise LoginError(
            f"{host} answered, but it is not a gradexp server (GET /healthz gave HTTP {status}); "
            "check the URL (--host)."
        )


def _looks_like_key(key: str) -> bool:
    return key.startswith("gx_") and len(key) == 43 and key.isascii() and key.isprintable()


def whoami(host: str, key: str, *, timeout: float = HTTP_TIMEOUT) -> Identity:
    """Ask the server who ``key`` belongs to (``GET /api/v1/viewer``); LoginError if refused."""
    if not _looks_like_key(key):
        raise LoginError(
            "that is not a gradexp API key (keys are gx_ and 40 more characters); "
            f"copy one from {host}{KEYS_PAGE_PATH}."
        )
    status, body = _http("GET", host, API_PREFIX + "/viewer", key=key, timeout=timeout)
    if status == 401:
        raise LoginError(f"{host} refused the key {mask_key(key)}: it was revoked or mistyped.")
    if status != 200 or not isinstance(body, dict) or "user" not in body:
        detail = _server_message(body) or f"HTTP {status}"
        raise LoginError(f"{host} could not check the key ({detail}); is it a gradexp server?")
    key_info = body.get("key") or {}
    return Identity(host, str(body["user"]["name"]), key_info.get("name"), key_info.get("prefix"))


# --- the loopback listener ---------------------------------------------------------------


@dataclass
class _Outcome:
    identity: Identity | None = None
    api_key: str | None = None
    error: LoginError | None = None


class _Listener:
    """A one-shot HTTP listener on 127.0.0.1 that receives the Authorize redirect."""

    def __init__(self, host: str, state: str, verifier: str) -> None:
        self.host = host
        self.state = state
        self.verifier = verifier
        self.outcome: _Outcome | None = None
        self.busy = threading.Event()  # a callback arrived and is being handled
        self.done = threading.Event()  # the outcome is set
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "gradexp-login"

            def do_GET(self) -> None:  # the listener thread
                parts = urlsplit(self.path)
                if parts.path != "/callback":
                    self._reply(404, "Not here.")
                    return
                if listener.busy.is_set():
                    self._reply(410, "This login already finished; look at your terminal.")
                    return
                listener.busy.set()
                result = listener.handle(parse_qs(parts.query))
                self.send_response(303)
                self.send_header("Location", f"{listener.host}/login/done?result={result}")
                self.send_header("Content-Length", "0")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                listener.done.set()

            def _reply(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line holds the one-time code: never log it

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.redirect_uri = f"http://127.0.0.1:{self.port}/callback"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="gradexp-login-listener",
            daemon=True,
        )

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def handle(self, query: dict[str, list[str]]) -> str:
        """Turn the browser's answer into an outcome; returns the done page's ``result``."""
        state = (query.get("state") or [""])[0]
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            self.outcome = _Outcome(
                error=LoginError(
                    "the browser's answer does not belong to this login (wrong state); "
                    "nothing was stored. Run `gradexp login` again."
                )
            )
            return "state"
        if (query.get("error") or [""])[0]:
            self.outcome = _Outcome(
                error=LoginError("login cancelled in the browser; nothing was stored.")
            )
            return "denied"
        code = (query.get("code") or [""])[0]
        try:
            status, body = _http(
                "POST",
                self.host,
                TOKEN_PATH,
                body={
                    "code": code,
                    "code_verifier": self.verifier,
                    "redirect_uri": self.redirect_uri,
                },
            )
        except LoginError as exc:
            self.outcome = _Outcome(error=exc)
            return "error"
        if status == 200 and isinstance(body, dict) and isinstance(body.get("api_key"), str):
            key = body["key"] or {}
            identity = Identity(
                self.host, str(body["user"]["name"]), key.get("name"), key.get("prefix")
            )
            self.outcome = _Outcome(identity=identity, api_key=body["api_key"])
            return "ok"
        message = _server_message(body) or f"HTTP {status}"
        if isinstance(body, dict) and (body.get("error") or {}).get("code") == "invalid_grant":
            self.outcome = _Outcome(
                error=LoginError(
                    f"the server refused the login code: {message} Nothing was stored."
                )
            )
            return "expired"
        self.outcome = _Outcome(
            error=LoginError(f"{self.host} could not finish the login ({message}).")
        )
        return "error"


# --- the flow ----------------------------------------------------------------------------


def _tell(message: str) -> None:
    """A line for the person logging in (stderr: stdout may be piped)."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # a closed stderr must not break the login
        pass


def can_open_browser() -> bool:
    """Whether a graphical browser can plausibly open here.

    On Linux without a display (SSH, a container) ``webbrowser`` would fall back to a
    console browser that takes over the terminal; there we go straight to pasting a key.
    ``BROWSER`` set means the user chose, whatever it is.
    """
    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_in_thread(url: str) -> dict[str, bool | None]:
    """Open ``url`` in the browser from a daemon thread; the dict's ``ok`` fills in later."""
    result: dict[str, bool | None] = {"ok": None}

    def run() -> None:
        import webbrowser

        try:
            result["ok"] = bool(webbrowser.open(url, new=1))
        except Exception:  # webbrowser.Error, or a broken BROWSER command
            result["ok"] = False

    threading.Thread(target=run, name="gradexp-login-browser", daemon=True).start()
    return result


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)  # 64 characters from the RFC 7636 alphabet
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def browser_login(host: str, *, timeout: float = BROWSER_TIMEOUT) -> tuple[Identity, str] | None:
    """Authorize in a browser: ``(identity, new key)``, or None when no browser answered
    (it could not open, or nothing came back within ``timeout``). LoginError on a refusal."""
    verifier, challenge = _pkce_pair()
    state = secrets.token_urlsafe(24)
    listener = _Listener(host, state, verifier)
    query = {
        "port": listener.port,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "client": socket.gethostname() or "this machine",
    }
    url = f"{host}{AUTHORIZE_PATH}?{urlencode(query)}"
    listener.start()
    try:
        _tell(f"Opening a browser to sign in to {host} ...")
        _tell(f"If it does not open, visit this URL on this machine:\n  {url}")
        opened = _open_in_thread(url)
        deadline = time.monotonic() + timeout
        while not listener.done.wait(0.1):
            if listener.busy.is_set():
                continue  # the answer is here and being handled: never cut that short
            if opened["ok"] is False:
                _tell("Could not open a browser.")
                return None
            if time.monotonic() > deadline:
                _tell(f"No answer from the browser within {timeout:.0f} s.")
                return None
    finally:
        listener.close()
    outcome = listener.outcome
    assert outcome is not None
    if outcome.error is not None:
        raise outcome.error
    assert outcome.identity is not None and outcome.api_key is not None
    return outcome.identity, outcome.api_key


def read_pasted_key(host: str) -> str:
    """Ask for a key made on the keys page (hidden on a terminal, one line otherwise)."""
    _tell(f"Create a key at {host}{KEYS_PAGE_PATH} (sign in there), then paste it here.")
    try:
        # A terminal or a notebook (ipykernel routes getpass to a password box): not echoed.
        if "ipykernel" in sys.modules or (sys.stdin is not None and sys.stdin.isatty()):
            import getpass

            key = getpass.getpass("API key: ")
        else:  # piped: one line
            _tell("API key: ")
            key = input()
    except (EOFError, KeyboardInterrupt, RuntimeError):  # RuntimeError: no stdin at all
        key = ""
    key = key.strip()
    if not key:
        raise LoginError(
            f"no API key was given; nothing was stored. Create one at {host}{KEYS_PAGE_PATH} "
            "and run `gradexp login --key KEY`."
        )
    return key


def _store(identity: Identity, key: str) -> None:
    save_credentials(identity.host, key, identity.user)
    if os.environ.get(ENV_API_KEY) and os.environ[ENV_API_KEY] != key:
        _tell(
            f"Note: {ENV_API_KEY} is set in this environment and wins over the stored key; "
            "unset it to use the new one."
        )


def _checked(host: str, key: str) -> Identity:
    try:
        return whoami(host, key)
    except LoginError as exc:
        raise LoginError(f"{exc} Nothing was stored.") from None


def _already(host: str) -> tuple[Identity, str] | None:
    """The identity of the key scripts would use for ``host`` now, if the server accepts it."""
    key = os.environ.get(ENV_API_KEY) or (load_credentials()["hosts"].get(host) or {}).get(
        "api_key"
    )
    if not key:
        return None
    try:
        return whoami(host, key), key
    except LoginError:
        return None


def login(key: str | None = None, host: str | None = None, relogin: bool = False) -> bool:
    """Log in to a gradexp server and store the API key for later scripts.

    With ``key``, check it with the server and store it. Without, reuse a key that still
    works (unless ``relogin``), else sign in through the browser (or paste a key made on the
    server's keys page when no browser answers). Returns True once logged in; raises
    :class:`LoginError` (a ``GradexpError``) with a one-line reason otherwise, storing nothing.

    ``GRADEXP_API_KEY``, when set, wins over the stored key.

    Example::

        import gradexp
        gradexp.login(host="http://gpu-box:8080")          # browser sign-in
        gradexp.login(key="gx_...", host="http://gpu-box:8080")
    """
    identity, _stored = login_flow(key=key, host=host, relogin=relogin, timeout=BROWSER_TIMEOUT)
    say(f"Logged in to {identity.host} as {identity.user}")
    return True


def login_flow(
    *,
    key: str | None,
    host: str | None,
    relogin: bool,
    timeout: float,
    no_browser: bool = False,
) -> tuple[Identity, bool]:
    """The whole login, for ``gradexp.login()`` and ``gradexp login``: returns the identity
    and whether a new key was stored (False: a stored key still works). LoginError (or
    another GradexpError) when it fails, with nothing stored."""
    server = resolve_host(host)
    check_server(server)
    if key is not None:
        identity = _checked(server, key.strip())
        _store(identity, key.strip())
        return identity, True
    if not relogin:
        current = _already(server)
        if current is not None:
            return current[0], False
    result = None
    if not no_browser and can_open_browser():
        result = browser_login(server, timeout=timeout)
    elif not no_browser:
        _tell("No browser can open here (no display).")
    if result is None:
        pasted = read_pasted_key(server)
        identity = _checked(server, pasted)
        _store(identity, pasted)
        return identity, True
    identity, new_key = result
    _store(identity, new_key)
    return identity, True
