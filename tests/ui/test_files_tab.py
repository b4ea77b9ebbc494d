"""The Files tab: saved files listed with size and time, text and image previews,
downloads, and a file saved while the page is open showing up."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from playwright.sync_api import expect


def _png(width: int, height: int) -> bytes:
    """A small RGB PNG: a colour gradient (no imaging library needed)."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_files_tab_lists_previews_and_downloads(
    ui: Any, server: Any, project: str, tmp_path: Path, log_run: Any
) -> None:
    work = tmp_path / "work"
    (work / "configs").mkdir(parents=True)
    (work / "configs" / "train.yaml").write_text("lr: 0.001\nbatch_size: 64\nmodel:\n  depth: 12\n")
    (work / "train.log").write_text(
        "".join(f"epoch {i}: loss {1 / (i + 1):.4f}\n" for i in range(40))
    )
    (work / "samples.png").write_bytes(_png(96, 64))
    (work / "model.bin").write_bytes(bytes(range(256)) * 4096)

    def rows(run: Any) -> None:
        run.save("configs/*.yaml", base_path=work, policy="now")
        run.save(work / "train.log", policy="now")
        run.save(work / "samples.png", policy="now")
        run.save(work / "model.bin", policy="end")
        for step in range(5):
            run.log({"loss": 1 / (step + 1)})

    run = log_run(project, rows, name="with-files")
    page = ui.page()
    ui.goto(page, f"/r/{run.id}#files")
    table = page.locator(".files-table")
    for name in ("configs/train.yaml", "train.log", "samples.png", "model.bin", "requirements.txt"):
        expect(table.locator("td.file-name", has_text=name)).to_be_visible()
    expect(table.locator("tr", has_text="model.bin")).to_contain_text("1.05 MB")

    table.locator("button", has_text="train.log").click()
    expect(page.locator(".file-text")).to_contain_text("epoch 39: loss 0.0250")
    table.locator("button", has_text="samples.png").click()
    image = page.locator(".file-image")
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('.file-image').naturalWidth === 96")
    ui.shot(page, "files-tab")
    table.locator("button", has_text="model.bin").click()
    expect(page.locator(".files-preview")).to_contain_text("No preview")

    with page.expect_download() as info:
        table.locator("tr", has_text="configs/train.yaml").get_by_role(
            "link", name="Download"
        ).click()
    saved = info.value.path()
    assert Path(saved).read_text() == (work / "configs" / "train.yaml").read_text()
