"""Accounts over HTTP, as a browser sees them: sessions and their cookies, CSRF, sign-in
redirects, wrong-password lockouts, expiry, sign-out, passwords, sign-in links, keys and
their revocation (in every server process), and the authorize/token exchange on every
database."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from .conftest import PASSWORD, WebClient, add_user, admin


def _cookie_header(reply: Any, name: str) -> str:
    found = [c for c in reply.cookies() if c.startswith(name + "=")]
    assert found, reply.cookies()
    return str(found[0])


def test_session_cookie_flags(server: Any, web: WebClient, user: str) -> None:
    reply = web.sign_in(user, next_path="/keys")
    assert reply.status == 303 and reply.location == "/keys"
    session = _cookie_header(reply, "gradexp_session")
    flags = {part.strip().lower() for part in session.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    csrf = _cookie_header(reply, "gradexp_csrf").lower()
    assert "httponly" not in csrf  # the page's script reads it for the X-CSRF-Token header
    # The session works for the API (GET) and for pages.
    viewer = web.request("GET", "/api/v1/viewer", headers={"Accept": "application/json"})
    assert viewer.status == 200 and viewer.json()["user"]["name"] == user
    assert viewer.json()["key"] is None
    assert web.request("GET", "/keys").status == 200


@pytest.mark.slow
def test_secure_cookie_behind_https(start_server: Any) -> None:
    srv = start_server(env={"GRADEXP_PUBLIC_URL": "https://gradexp.example.org"})
    name = add_user(srv)
    web = WebClient(srv.url)
    page = web.request("GET", "/login")
    assert "secure" in _cookie_header(page, "gradexp_login").lower()
    reply = web.request(
        "POST",
        "/login",
        form={
            "csrf": web.form_token(page.text),
            "next": "/",
            "username": name,
            "password": PASSWORD,
        },
        headers={
            "Origin": "https://gradexp.example.org",
            "Cookie": f"gradexp_login={web.form_token(page.text)}",
        },
    )
    assert reply.status == 303, reply.text
    assert "; secure" in _cookie_header(reply, "gradexp_session").lower()


def test_writes_with_a_session_need_the_csrf_header(server: Any, web: WebClient, user: str) -> None:
    web.sign_in(user)
    token = web.cookie("gradexp_csrf")
    assert token
    body = {"name": "from-the-ui"}
    missing = web.request("POST", "/api/v1/api-keys", json_body=body)
    assert missing.status == 403
    assert "X-CSRF-Token" in missing.json()["error"]["message"]
    wrong = web.request(
        "POST", "/api/v1/api-keys", json_body=body, headers={"X-CSRF-Token": "x" + token[1:]}
    )
    assert wrong.status == 403
    listing = web.request("GET", "/api/v1/api-keys", headers={"Accept": "application/json"})
    assert listing.json()["keys"] == []  # nothing was created by the refused requests
    ok = web.request("POST", "/api/v1/api-keys", json_body=body, headers={"X-CSRF-Token": token})
    assert ok.status == 201, ok.text
    assert ok.json()["api_key"].startswith("gx_")


def test_forms_refuse_a_wrong_token_or_another_origin(
    server: Any, web: WebClient, user: str
) -> None:
    web.sign_in(user)
    page = web.request("GET", "/keys")
    token = web.form_token(page.text)
    forged = web.request("POST", "/keys", form={"csrf": "forged", "name": "evil"})
    assert forged.status == 403 and "nothing was created" in forged.text
    cross = web.request(
        "POST",
        "/keys",
        form={"csrf": token, "name": "evil"},
        headers={"Origin": "https://attacker.example"},
    )
    assert cross.status == 403
    assert "evil" not in web.request("GET", "/keys").text
    # A sign-in form posted without the pre-session cookie (from another site) is refused.
    stranger = WebClient(server.url)
    reply = stranger.request(
        "POST",
        "/login",
        form={"csrf": "guess", "next": "/", "username": user, "password": PASSWORD},
    )
    assert reply.status == 400 and "expired" in reply.text
    assert stranger.cookie("gradexp_session") is None
    # Authorize needs the session's token too.
    params = _authorize_params()[0]
    reply = web.request("POST", "/authorize", form={**params, "decision": "allow", "csrf": "x"})
    assert reply.status == 403
    assert "127.0.0.1" not in reply.location


def test_signed_out_pages_redirect_and_the_api_says_401(server: Any) -> None:
    web = WebClient(server.url)
    page = web.request("GET", "/r/abc123?tab=files")
    assert page.status == 303
    assert page.location == "/login?" + urlencode({"next": "/r/abc123?tab=files"})
    api = web.request("GET", "/api/v1/projects", headers={"Accept": "application/json"})
    assert api.status == 401 and api.json()["error"]["code"] == "unauthorized"
    not_html = web.request("GET", "/", headers={"Accept": "*/*"})
    assert not_html.status == 401
    keys = web.request("GET", "/keys")
    assert keys.status == 303 and keys.location.startswith("/login?next=%2Fkeys")


@pytest.mark.parametrize(
    ("given", "lands"),
    [
        ("/r/abc?x=1", "/r/abc?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/logout", "/"),
    ],
)
def test_next_is_a_local_path(server: Any, user: str, given: str, lands: str) -> None:
    web = WebClient(server.url)
    reply = web.sign_in(user, next_path=given)
    assert reply.status == 303 and reply.location == lands


@pytest.mark.slow
def test_repeated_wrong_passwords_lock_that_name(server: Any, user: str) -> None:
    web = WebClient(server.url)
    statuses = [web.sign_in(user, password="wrong password").status for _ in range(4)]
    assert statuses == [401] * 4
    fifth = web.sign_in(user, password="wrong password")
    assert fifth.status == 429 and "Too many tries" in fifth.text
    # Locked: even the right password is refused now, without being checked.
    right = web.sign_in(user)
    assert right.status == 429 and "Too many wrong passwords" in right.text
    assert web.cookie("gradexp_session") is None
    # Another user from the same address is not affected.
    other = add_user(server)
    assert WebClient(server.url).sign_in(other).status == 303


def test_unknown_user_reads_like_a_wrong_password(server: Any) -> None:
    reply = WebClient(server.url).sign_in("nobody-" + secrets.token_hex(4))
    assert reply.status == 401 and "Wrong user name or password." in reply.text


def test_a_user_without_password_cannot_sign_in(server: Any) -> None:
    name = add_user(server, password=None)
    reply = WebClient(server.url).sign_in(name, password="anything at all")
    assert reply.status == 401


@pytest.mark.slow
def test_sessions_expire(start_server: Any) -> None:
    srv = start_server(env={"GRADEXP_SERVER_SESSION_IDLE": "1"})
    name = add_user(srv)
    web = WebClient(srv.url)
    assert web.sign_in(name).status == 303
    time.sleep(2.5)
    reply = web.request("GET", "/api/v1/viewer", headers={"Accept": "application/json"})
    assert reply.status == 401
    assert "session has ended" in reply.json()["error"]["message"]
    assert web.request("GET", "/keys").status == 303


def test_sign_out_ends_the_session_on_the_server(server: Any, user: str) -> None:
    web = WebClient(server.url)
    web.sign_in(user)
    stolen = web.cookie("gradexp_session")
    page = web.request("GET", "/keys")
    reply = web.request("POST", "/logout", form={"csrf": web.form_token(page.text)})
    assert reply.status == 303 and reply.location == "/login?signed_out=1"
    assert web.cookie("gradexp_session") is None
    # The old cookie value is dead too: the session is gone from the database.
    thief = WebClient(server.url)
    reply = thief.request(
        "GET",
        "/api/v1/viewer",
        headers={"Accept": "application/json", "Cookie": f"gradexp_session={stolen}"},
    )
    assert reply.status == 401


@pytest.mark.slow
def test_not_you_on_the_authorize_page_signs_out_and_comes_back(
    server: Any, web: WebClient, user: str
) -> None:
    web.sign_in(user)
    params, _verifier = _authorize_params()
    here = "/authorize?" + urlencode(params)
    page = web.request("GET", here)
    assert "Not you? Sign out" in page.text
    reply = web.request("POST", "/logout", form={"csrf": web.form_token(page.text), "next": here})
    assert reply.status == 303
    assert reply.location == "/login?" + urlencode({"signed_out": "1", "next": here})
    other = add_user(server)
    assert web.sign_in(other, next_path=here).location == here
    assert f"Signed in as <b>{other}</b>" in web.request("GET", here).text


@pytest.mark.slow
def test_passwd_changes_the_password_and_signs_out(server: Any, user: str) -> None:
    web = WebClient(server.url)
    web.sign_in(user)
    proc = admin(server, "user", "passwd", user, "--password-stdin", input="a new password\n")
    assert proc.returncode == 0, proc.stderr
    viewer = web.request("GET", "/api/v1/viewer", headers={"Accept": "application/json"})
    assert viewer.status == 401
    assert WebClient(server.url).sign_in(user).status == 401
    assert WebClient(server.url).sign_in(user, password="a new password").status == 303
    weak = admin(server, "user", "passwd", user, "--password-stdin", input="short\n")
    assert weak.returncode == 1 and "at least 8 characters" in weak.stderr


def test_sign_in_link_works_once(server: Any, user: str) -> None:
    proc = admin(server, "user", "login-link", user, "--url", server.url, "--next", "/r/abc")
    assert proc.returncode == 0, proc.stderr
    link = proc.stdout.strip()
    path = link.removeprefix(server.url)
    assert path.startswith("/login/link?token=")
    web = WebClient(server.url)
    page = web.request("GET", path)
    assert page.status == 200 and f"Continue as {user}" in page.text
    token = parse_qs(urlsplit(path).query)["token"][0]
    reply = web.request(
        "POST",
        "/login/link",
        form={"csrf": web.form_token(page.text), "token": token, "next": "/r/abc"},
    )
    assert reply.status == 303 and reply.location == "/r/abc"
    viewer = web.request("GET", "/api/v1/viewer", headers={"Accept": "application/json"})
    assert viewer.json()["user"]["name"] == user
    again = WebClient(server.url).request("GET", path)
    assert again.status == 410 and "already used" in again.text


@pytest.mark.slow
def test_revoked_key_is_refused_by_every_server_process(start_server: Any) -> None:
    first = start_server()
    second = start_server(db_url=first.db_url, store_url=first.store_url)
    name = add_user(first)
    web = WebClient(first.url)
    web.sign_in(name)
    page = web.request("GET", "/keys")
    created = web.request("POST", "/keys", form={"csrf": web.form_token(page.text), "name": "ci"})
    assert created.status == 200
    match = re.search(r'id="new-key" class="secret">(gx_[^<]+)</code>', created.text)
    assert match, created.text
    key = match.group(1)
    assert second.request("GET", "/api/v1/viewer", key=key)[0] == 200
    key_id = next(k["id"] for k in first.request("GET", "/api/v1/api-keys", key=key)[1]["keys"])
    page = web.request("GET", "/keys")
    revoked = web.request(
        "POST", f"/keys/{key_id}/revoke", form={"csrf": web.form_token(page.text)}
    )
    assert revoked.status == 303 and revoked.location == f"/keys?revoked={key_id}"
    for srv in (first, second):
        status, body = srv.request("GET", "/api/v1/viewer", key=key)
        assert status == 401 and body["error"]["code"] == "unauthorized"
    listing = web.request("GET", f"/keys?revoked={key_id}").text
    assert "revoked" in listing and "Scripts using it are refused" in listing


# --- the authorize flow without a browser, on every database -----------------------------------


def _authorize_params(port: int = 45678) -> tuple[dict[str, str], str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    params = {
        "port": str(port),
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "client": "test-box",
    }
    return params, verifier


def _authorize(web: WebClient, params: dict[str, str]) -> str:
    page = web.request("GET", "/authorize?" + urlencode(params))
    assert page.status == 200, page.text
    reply = web.request(
        "POST",
        "/authorize",
        form={**params, "csrf": web.form_token(page.text), "decision": "allow"},
    )
    assert reply.status == 303, reply.text
    return reply.location


@pytest.mark.slow
def test_authorize_and_token_exchange(db_url: str, start_server: Any) -> None:
    srv = start_server(db_url=db_url)
    name = add_user(srv)
    web = WebClient(srv.url)

    # Signed out: the authorize page sends the browser to sign in first, and back.
    params, verifier = _authorize_params()
    first = web.request("GET", "/authorize?" + urlencode(params))
    assert first.status == 303 and first.location.startswith("/login?next=%2Fauthorize%3F")
    signed_in = web.sign_in(name, next_path=parse_qs(urlsplit(first.location).query)["next"][0])
    assert signed_in.location.startswith("/authorize?")

    location = _authorize(web, params)
    target = urlsplit(location)
    assert (target.scheme, target.netloc, target.path) == ("http", "127.0.0.1:45678", "/callback")
    query = parse_qs(target.query)
    assert query["state"] == [params["state"]]
    code = query["code"][0]
    redirect = "http://127.0.0.1:45678/callback"

    exchange = {"code": code, "code_verifier": verifier, "redirect_uri": redirect}
    status, body = srv.request("POST", "/api/v1/auth/token", exchange, key="none")
    assert status == 200, body
    assert body["user"]["name"] == name and body["key"]["name"] == "test-box"
    key = body["api_key"]
    assert srv.request("GET", "/api/v1/viewer", key=key)[1]["user"]["name"] == name

    # The code works once.
    status, body = srv.request("POST", "/api/v1/auth/token", exchange, key="none")
    assert status == 400 and body["error"]["code"] == "invalid_grant"

    # A wrong verifier gets nothing, and burns the code for the right one too.
    params, verifier = _authorize_params()
    code = parse_qs(urlsplit(_authorize(web, params)).query)["code"][0]
    wrong = {"code": code, "code_verifier": secrets.token_urlsafe(48), "redirect_uri": redirect}
    status, body = srv.request("POST", "/api/v1/auth/token", wrong, key="none")
    assert status == 400 and "does not match" in body["error"]["message"]
    right = {**wrong, "code_verifier": verifier}
    status, body = srv.request("POST", "/api/v1/auth/token", right, key="none")
    assert status == 400 and body["error"]["code"] == "invalid_grant"

    # Cancel sends the CLI an access_denied, and makes no code.
    params, verifier = _authorize_params()
    page = web.request("GET", "/authorize?" + urlencode(params))
    reply = web.request(
        "POST", "/authorize", form={**params, "csrf": web.form_token(page.text), "decision": "deny"}
    )
    assert parse_qs(urlsplit(reply.location).query) == {
        "error": ["access_denied"],
        "state": [params["state"]],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"port": "80"},
        {"port": "nope"},
        {"code_challenge_method": "plain"},
        {"code_challenge": "short"},
        {"state": "<script>"},
    ],
)
def test_authorize_refuses_bad_parameters(
    server: Any, web: WebClient, user: str, change: dict[str, str]
) -> None:
    web.sign_in(user)
    params = {**_authorize_params()[0], **change}
    page = web.request("GET", "/authorize?" + urlencode(params))
    assert page.status == 400 and "Run gradexp login again" in page.text
    assert "<script>" not in page.text


@pytest.mark.slow
def test_the_demo_sign_in_link_opens_the_run(start_server: Any) -> None:
    from gradexp.cli.demo import DEMO_USER, sign_in_link

    srv = start_server()
    add_user(srv, DEMO_USER, password=None)  # as `gradexp demo` makes it: no password
    link = sign_in_link(srv.data_dir, srv.url, "/r/demo-run")
    assert link is not None and link.startswith(srv.url + "/login/link?token=")
    web = WebClient(srv.url)
    page = web.request("GET", link.removeprefix(srv.url))
    assert f"Continue as {DEMO_USER}" in page.text
    reply = web.request(
        "POST",
        "/login/link",
        form={
            "csrf": web.form_token(page.text),
            "token": web.form_token(page.text, "token"),
            "next": web.form_token(page.text, "next"),
        },
    )
    assert reply.status == 303 and reply.location == "/r/demo-run"
    viewer = web.request("GET", "/api/v1/viewer", headers={"Accept": "application/json"})
    assert viewer.json()["user"]["name"] == DEMO_USER
