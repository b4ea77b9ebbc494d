"""The Artifacts page of a project: artifacts, their versions and aliases, one version's
files, metadata and lineage, with links both ways between it and the run pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_artifacts_page_versions_files_and_lineage(
    ui: Any, project: str, log_run: Any, tmp_path: Path
) -> None:
    import gradexp

    def trainer(run: Any) -> None:
        for epoch in range(2):
            ckpt = tmp_path / "model.pt"
            ckpt.write_bytes(b"weights of epoch %d" % epoch * 1000)
            art = gradexp.Artifact(
                "classifier", type="model", description="a small CNN", metadata={"epoch": epoch}
            )
            art.add_file(ckpt)
            with art.new_file("labels.txt") as f:
                f.write("cat\ndog\n")
            run.log_artifact(art, aliases=["best"] if epoch == 0 else ["candidate"])
            run.log({"loss": 1.0 / (epoch + 1)})

    def evaluator(run: Any) -> None:
        run.use_artifact("classifier:best")
        run.log({"eval/acc": 0.9})

    train = log_run(project, trainer, name="trainer")
    evaluate = log_run(project, evaluator, name="evaluator")

    page = ui.page()
    ui.goto(page, f"/p/{ui.server.user}/{project}")
    page.get_by_role("link", name="Artifacts").click()
    expect(page.locator(".artifact-list li.selected")).to_contain_text("classifier")
    versions = page.locator("table.versions tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.nth(0)).to_contain_text("v1")
    expect(versions.nth(0).locator(".tag")).to_have_text(["candidate", "latest"])
    expect(versions.nth(1).locator(".tag")).to_have_text(["best"])
    card = page.locator(".version-card")
    expect(card.locator(".lineage")).to_contain_text("Logged by trainer")
    expect(card.locator("table.files tbody tr")).to_have_count(2)
    ui.shot(page, "artifacts-latest")

    # v0: used by the evaluator; its link opens that run, whose page links back.
    versions.nth(1).get_by_role("link", name="v0").click()
    expect(card.locator(".lineage")).to_contain_text("Used by evaluator")
    expect(card).to_contain_text('"epoch": 0')
    expect(card).to_contain_text("a small CNN")
    ui.shot(page, "artifacts-v0-lineage")
    card.locator(".lineage").get_by_role("link", name="evaluator").click()
    page.wait_for_url(f"**/r/{evaluate.id}")
    page.get_by_role("link", name="Overview").click()  # the run's overview lists them
    used = page.locator(".run-artifacts")
    expect(used).to_contain_text("Used")
    used.get_by_role("link", name="classifier:v0").click()
    expect(page.locator(".version-card h2")).to_contain_text("classifier:v0")

    # The trainer's page lists both versions it logged.
    ui.goto(page, f"/r/{train.id}#overview")
    expect(page.locator(".run-artifacts li")).to_have_count(2)
    ui.shot(page, "run-page-artifacts")
