"""A real notebook, executed headlessly by nbclient in an ipykernel."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import file_records, server_rows

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

INIT_CELL = "import gradexp\nrun = gradexp.init(project='sdk-notebook')\nfirst_id = run.id"


def _kernel_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this interpreter in a temporary JUPYTER_PATH (never the user's)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "gradexp-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "gradexp test",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter-runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return "gradexp-test"


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
    kernel = _kernel_spec(gx_env, monkeypatch)
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
