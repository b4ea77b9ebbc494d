"""Teams and sharing in a real browser: the namespace switcher, a team's Members page,
the share dialog, and a shared page opened without an account (live, then revoked)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.helpers import make_team
from tests.server.helpers import anonymous_get, post, put_run, steps_batch


def _team_with_run(server: Any) -> tuple[str, str, str]:
    """A team where the signed-in user is admin and another user a member, with a running
    run (8 steps) in its project ``vision``: returns (team, member, run id)."""
    tag = uuid.uuid4().hex[:6]
    team = f"lab-{tag}"
    member, _key = server.new_user(f"bea-{tag}")
    make_team(server.db_url, team, {server.user: "admin", member: "member"})
    run_id = f"tv{tag}"
    status, body = put_run(server, run_id, "vision", entity=team, name="resnet-team")
    assert status == 201, body
    assert post(server, run_id, steps_batch(1, 8))[0] == 200
    return team, member, run_id


def test_switcher_and_members_page(ui: Any) -> None:
    server = ui.server
    team, member, _run_id = _team_with_run(server)
    newcomer, _ = server.new_user(f"cy-{uuid.uuid4().hex[:6]}")
    page = ui.goto(ui.page(), "/")
    switcher = page.locator("#namespace-switcher")
    switcher.wait_for()
    assert f"{team} · team (admin)" in switcher.inner_text()
    ui.shot(page, "projects-with-switcher")
    switcher.select_option(team)
    page.wait_for_url(f"**/?owner={team}")
    page.wait_for_selector("h1:has-text('Projects of')")
    assert page.locator("table tbody tr").count() == 1
    assert "team · admin" in page.locator("table tbody").inner_text()
    ui.shot(page, "team-namespace")

    page.locator("a.members-link").click()
    page.wait_for_selector("table.members")
    rows = page.locator("table.members tbody tr")
    assert rows.count() == 2
    page.fill("form.add-member input[name=user]", newcomer)
    page.select_option("form.add-member select[name=role]", "viewer")
    page.click("form.add-member button[type=submit]")
    page.wait_for_selector(f"tr[data-member='{newcomer}']")
    page.select_option(f"tr[data-member='{member}'] select", "viewer")
    page.wait_for_function(
        "m => document.querySelector(`tr[data-member='${m}'] select`).value === 'viewer'",
        arg=member,
    )
    ui.shot(page, "members-page")
    page.click(f"tr[data-member='{newcomer}'] button:has-text('Remove')")
    page.wait_for_selector(f"tr[data-member='{newcomer}']", state="detached")
    # What the server holds, not just what the page shows.
    status, doc = server.request("GET", f"/api/v1/teams/{team}")
    assert status == 200
    assert {m["name"]: m["role"] for m in doc["members"]} == {
        server.user: "admin",
        member: "viewer",
    }


def test_share_dialog_and_shared_page_without_an_account(ui: Any, browser: Any) -> None:
    server = ui.server
    team, _member, run_id = _team_with_run(server)
    page = ui.goto(ui.page(), f"/r/{run_id}")
    page.click("button.share-button")
    dialog = page.locator("dialog.share-dialog")
    dialog.wait_for()
    dialog.locator("select").select_option("604800")  # 7 days
    dialog.locator("button:has-text('Create link')").click()
    url_input = dialog.locator("input.share-url")
    url_input.wait_for()
    url = url_input.input_value()
    assert url.startswith(server.url + "/s/gxs_")
    dialog.locator(".share-row").first.wait_for()
    ui.shot(page, "share-dialog")

    # A browser with no cookies at all opens the link: the run, live, and nothing else.
    guest = browser.new_context(viewport={"width": 1400, "height": 900})
    assert guest.cookies() == []
    shared = guest.new_page()
    errors: list[str] = []
    shared.on("pageerror", lambda exc: errors.append(str(exc)))
    shared.goto(url)
    shared.wait_for_selector("h1:has-text('resnet-team')")
    assert "Shared with you" in shared.locator("#topbar-right").inner_text()
    assert shared.locator("#crumbs a").count() == 0  # no way into the project
    assert "Step 7" in shared.locator(".facts").inner_text()
    post(server, run_id, steps_batch(9, 5))  # more steps arrive while the page is open
    shared.wait_for_function(
        "() => document.querySelector('.facts').textContent.includes('Step 12')"
    )
    shared.screenshot(
        path=str(ui.shot(page, "owner-view-after-share").parent / f"{ui.test_name}-shared-page.png")
    )
    assert shared.url == url  # tabs and links kept it on its own address

    # Revoked: the open page learns it and says the link is gone.
    (link,) = server.request("GET", f"/api/v1/projects/{team}/vision/shares")[1]["shares"]
    assert server.request("DELETE", f"/api/v1/projects/{team}/vision/shares/{link['id']}")[0] == 200
    shared.wait_for_selector("text=revoked or has expired", timeout=20_000)
    shared.screenshot(
        path=str(ui.shot(page, "owner-view-after-revoke").parent / f"{ui.test_name}-revoked.png")
    )
    assert guest.cookies() == []  # the shared page never needed one
    guest.close()
    assert not errors, errors


def test_shared_compare_view_shows_its_runs_live_and_nothing_else(ui: Any, browser: Any) -> None:
    server = ui.server
    team, _member, first = _team_with_run(server)
    second, outsider = f"{first}b", f"{first}c"
    for run_id, name in ((second, "vit-team"), (outsider, "not-shared")):
        assert put_run(server, run_id, "vision", entity=team, name=name)[0] == 201
        assert post(server, run_id, steps_batch(1, 8))[0] == 200
    page = ui.goto(ui.page(), f"/compare?runs={first},{second}")
    page.click("button.share-button")
    dialog = page.locator("dialog.share-dialog")
    dialog.locator("button:has-text('Create link')").click()
    url_input = dialog.locator("input.share-url")
    url_input.wait_for()
    url = url_input.input_value()
    # What the link holds on the server: exactly the two compared runs.
    token = url.rsplit("/", 1)[1]
    status, body = anonymous_get(server, f"/api/v1/share?share={token}")
    assert status == 200 and sorted(body["runs"]) == sorted([first, second])
    ui.shot(page, "compare-share-dialog")

    guest = browser.new_context(viewport={"width": 1400, "height": 900})
    shared = guest.new_page()
    errors: list[str] = []
    shared.on("pageerror", lambda exc: errors.append(str(exc)))
    shared.goto(url)
    shared.wait_for_selector("h1:has-text('Comparing 2 runs')")
    legend = shared.locator(".legend").inner_text()
    assert "resnet-team" in legend and "vit-team" in legend and "not-shared" not in legend
    assert shared.locator(".legend a[href]").count() == 0  # no way to the runs' own pages
    assert shared.locator("button.share-button").count() == 0
    assert shared.locator("#crumbs a").count() == 0
    panel = shared.locator('.panel[data-key="loss"]')
    panel.wait_for()
    shared.wait_for_function(
        "() => document.querySelector('.panel[data-key=\"loss\"]')?.getAttribute('aria-busy') === 'false'"
    )
    # More steps of one shared run arrive while the page is open: its chart grows.
    assert post(server, second, steps_batch(9, 40))[0] == 200
    box = panel.locator("canvas.chart-overlay").bounding_box()
    assert box is not None
    last_step = 0
    for _ in range(60):
        shared.mouse.move(box["x"] + box["width"] * 0.995, box["y"] + box["height"] / 2)
        head = panel.locator(".tip-head")
        head.wait_for(state="visible")
        last_step = int(head.inner_text().split("step")[-1].strip().replace(",", ""))
        if last_step >= 40:
            break
        shared.mouse.move(0, 0)
        shared.wait_for_timeout(500)
    assert last_step >= 40, f"the shared compare chart did not grow (step {last_step})"
    shared.screenshot(
        path=str(ui.shot(page, "owner-compare").parent / f"{ui.test_name}-shared-compare.png")
    )
    # The link reaches the two runs and nothing else of the project.
    q = f"?share={token}"
    assert anonymous_get(server, f"/api/v1/runs/{outsider}{q}")[0] == 404
    assert anonymous_get(server, f"/api/v1/runs/{second}{q}")[0] == 200
    guest.close()
    assert not errors, errors
