"""A live stream lives no longer than the credential it was opened with.

A stream opened with an API key ends when the key is revoked; one opened by a browser's
session ends when that session signs out or the user's password changes. Each ends with
``event: end`` and the reason, at once in the process where the credential died and within
a few seconds in any other process on the same database.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.login.conftest import WebClient, add_user, admin
from tests.server.helpers import SSE, new_id, post, put_run, steps_batch

CSRF = "X-CSRF-Token"


def _browser(server: Any, user: str) -> tuple[WebClient, str]:
    """A signed-in browser stand-in and the Cookie header its streams send."""
    web = WebClient(server.url)
    assert web.sign_in(user).status == 303
    return web, f"gradexp_session={web.cookie('gradexp_session')}"


def _session_run(server: Any, web: WebClient, project: str) -> str:
    """A run in ``project``, made through the browser's session (so it is that user's)."""
    run = new_id()
    reply = web.request(
        "PUT",
        f"/api/v1/runs/{run}",
        json_body={"project": project, "attempt": "a1"},
        headers={CSRF: web.cookie("gradexp_csrf") or ""},
    )
    assert reply.status == 201, reply.text
    return run


def _new_key(server: Any, web: WebClient) -> tuple[str, int]:
    """A new API key of the browser's user: (the key, its id)."""
    reply = web.request(
        "POST",
        "/api/v1/api-keys",
        json_body={"name": f"live-{uuid.uuid4().hex[:6]}"},
        headers={CSRF: web.cookie("gradexp_csrf") or ""},
    )
    assert reply.status == 201, reply.text
    body = reply.json()
    return body["api_key"], body["key"]["id"]


def _sign_out(web: WebClient) -> None:
    page = web.request("GET", "/keys")
    assert web.request("POST", "/logout", form={"csrf": web.form_token(page.text)}).status == 303


def _ended(stream: SSE, reason: str) -> dict[str, Any]:
    """The stream's last event: ``end`` with ``reason``; then the server closes it."""
    event = stream.next(event="end")
    assert event["data"] == {"reason": reason}
    assert stream.closed.wait(15), "the server kept the stream open after its end event"
    return event


def test_a_stream_ends_when_its_key_is_revoked(server: Any) -> None:
    status, body = server.request("POST", "/api/v1/api-keys", {"name": "live"})
    assert status == 201, body
    key, key_id = body["api_key"], body["key"]["id"]
    project = f"rv-{new_id('')[:8]}"
    run = new_id()
    put_run(server, run, project=project)
    post(server, run, steps_batch(1, 3))
    run_stream = SSE(server, f"/api/v1/runs/{run}/events", key=key)
    project_stream = SSE(server, f"/api/v1/projects/{server.user}/{project}/events", key=key)
    other = SSE(server, f"/api/v1/runs/{run}/events")  # the user's other key: unaffected
    try:
        assert [r["_seq"] for r in run_stream.rows_until(3)] == [1, 2, 3]
        project_stream.wait_ready()
        other.rows_until(3)
        post(server, run, steps_batch(4, 2))
        run_stream.rows_until(5)
        assert project_stream.next(event="rows")["data"]["run_id"] == run
        # Revoked through this same process: its streams hear of it at once.
        assert server.request("DELETE", f"/api/v1/api-keys/{key_id}")[0] == 200
        assert _ended(run_stream, "key_revoked")["id"] == "5"  # where it stopped
        _ended(project_stream, "key_revoked")
        post(server, run, steps_batch(6, 2))
        assert [r["_seq"] for r in other.rows_until(7)][-2:] == [6, 7]
        assert not other.closed.is_set()
        assert SSE(server, f"/api/v1/runs/{run}/events", key=key).status == 401
    finally:
        for stream in (run_stream, project_stream, other):
            stream.close()


def test_a_browser_stream_ends_when_its_session_signs_out(server: Any) -> None:
    user = add_user(server)
    web, cookie = _browser(server, user)
    _, laptop_cookie = _browser(server, user)  # the same user in another browser
    project = f"so-{new_id('')[:8]}"
    run = _session_run(server, web, project)
    key, _ = _new_key(server, web)
    stream = SSE(server, f"/api/v1/projects/{user}/{project}/events", cookie=cookie)
    kept = SSE(server, f"/api/v1/runs/{run}/events", cookie=laptop_cookie)
    try:
        assert stream.status == 200 and kept.status == 200
        stream.wait_ready()
        kept.next(event="run")
        _sign_out(web)
        _ended(stream, "signed_out")
        # Only that session: the other browser's stream still gets what is logged.
        post(server, run, steps_batch(1, 2), key=key)
        assert [r["_seq"] for r in kept.rows_until(2)] == [1, 2]
        assert not kept.closed.is_set()
        assert SSE(server, f"/api/v1/runs/{run}/events", cookie=cookie).status == 401
    finally:
        stream.close()
        kept.close()


@pytest.mark.slow
def test_browser_streams_end_when_the_password_changes(server: Any) -> None:
    user = add_user(server)
    web, cookie = _browser(server, user)
    project = f"pw-{new_id('')[:8]}"
    run = _session_run(server, web, project)
    key, _ = _new_key(server, web)
    stream = SSE(server, f"/api/v1/runs/{run}/events", cookie=cookie)
    script = SSE(server, f"/api/v1/runs/{run}/events", key=key)
    try:
        stream.next(event="run")
        script.next(event="run")
        # `gradexp server user passwd` is another process: the server finds out on its own.
        proc = admin(server, "user", "passwd", user, "--password-stdin", input="a new password\n")
        assert proc.returncode == 0, proc.stderr
        _ended(stream, "password_changed")
        # API keys outlive a password change, and so do their streams.
        post(server, run, steps_batch(1, 2), key=key)
        assert [r["_seq"] for r in script.rows_until(2)] == [1, 2]
        assert not script.closed.is_set()
    finally:
        stream.close()
        script.close()


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_streams_on_another_process_end_too(start_server: Any, db_url: str) -> None:
    a = start_server(db_url=db_url)
    b = start_server(db_url=db_url, store_url=a.store_url)
    user = add_user(a)
    web, cookie = _browser(a, user)
    project = f"mp-{new_id('')[:8]}"
    run = _session_run(a, web, project)
    key, key_id = _new_key(a, web)
    key_stream = SSE(b, f"/api/v1/runs/{run}/events", key=key)
    session_stream = SSE(b, f"/api/v1/projects/{user}/{project}/events", cookie=cookie)
    try:
        key_stream.next(event="run")
        session_stream.wait_ready()
        # Both die through A; B's streams end by themselves within a few seconds.
        reply = web.request(
            "DELETE", f"/api/v1/api-keys/{key_id}", headers={CSRF: web.cookie("gradexp_csrf") or ""}
        )
        assert reply.status == 200, reply.text
        _ended(key_stream, "key_revoked")
        _sign_out(web)
        _ended(session_stream, "signed_out")
        # A password change (another process again) ends the user's streams on A and B.
        _, cookie2 = _browser(a, user)
        on_a = SSE(a, f"/api/v1/runs/{run}/events", cookie=cookie2)
        on_b = SSE(b, f"/api/v1/runs/{run}/events", cookie=cookie2)
        try:
            on_a.next(event="run")
            on_b.next(event="run")
            proc = admin(a, "user", "passwd", user, "--password-stdin", input="another password\n")
            assert proc.returncode == 0, proc.stderr
            _ended(on_a, "password_changed")
            _ended(on_b, "password_changed")
        finally:
            on_a.close()
            on_b.close()
    finally:
        key_stream.close()
        session_stream.close()
