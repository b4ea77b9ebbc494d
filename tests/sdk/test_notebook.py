"""A real notebook, executed headlessly by nbclient in an ipykernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.services import require_kernel

from .conftest import file_records, kernel_spec, server_rows

nbformat, nbclient = require_kernel()  # skips the module with one line without a kernel

INIT_CELL = "import gradexp\nrun = gradexp.init(project='sdk-notebook')\nfirst_id = run.id"


def _outputs(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(data.get("text/html", ""))
        parts.append(data.get("text/plain", ""))
    return "".join(parts)


def test_notebook_init_log_alog_rerun_finish(
    online: Any, gx_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel = kernel_spec(gx_env, monkeypatch)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(INIT_CELL),
        nbformat.v4.new_code_cell("for i in range(10):\n    gradexp.log({'x': i})"),
        nbformat.v4.new_code_cell(
            "await gradexp.alog({'x': 10})\nok = await gradexp.aflush(timeout=60)\nprint('aflush', ok)"
        ),
        nbformat.v4.new_code_cell(INIT_CELL.replace("first_id", "second_id")),  # re-run init
        nbformat.v4.new_code_cell(
            "gradexp.log({'y': 1})\ngradexp.finish()\nprint('ids', first_id, second_id)"
        ),
    ]
    client = nbclient.NotebookClient(
        nb, kernel_name=kernel, timeout=180, resources={"metadata": {"path": str(gx_env)}}
    )
    client.execute()

    init_out = _outputs(nb.cells[0])
    assert '<a href="' in init_out and f"{online.url}/r/" in init_out
    assert "aflush True" in _outputs(nb.cells[2])
    assert "finishing run" in _outputs(nb.cells[3])  # re-running init finished the first run
    first_id, second_id = _outputs(nb.cells[4]).split("ids ")[1].split()
    assert first_id != second_id

    first_rows = server_rows(online, first_id)
    assert [r["x"] for r in first_rows] == list(range(11))
    assert [r["y"] for r in server_rows(online, second_id)] == [1]
    runs = sorted(p for p in (gx_env / "gradexp").iterdir() if p.name.startswith("run-"))
    assert len(runs) == 2
    assert all(file_records(r)[-1].type == "finish" for r in runs)
