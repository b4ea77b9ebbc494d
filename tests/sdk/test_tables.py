"""gradexp.Table: rows of numbers, strings, booleans, None and images logged at a step,
read back with Api as rows and as Arrow; online, offline then `gradexp sync`, bad cells,
and the server's check of the table value."""

from __future__ import annotations

import gzip
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gradexp
from gradexp.errors import GradexpWarning

from .conftest import file_records, gradexp_cli


def _api(server: Any) -> gradexp.Api:
    return gradexp.Api(base_url=server.url, api_key=server.api_key)


def _predictions(n: int = 5) -> gradexp.Table:
    rng = np.random.default_rng(0)
    table = gradexp.Table(columns=["id", "image", "label", "score", "ok"])
    for i in range(n):
        pixels = (rng.random((6, 6)) * 255).astype(np.uint8)
        table.add_data(i, gradexp.Image(pixels, caption=f"digit {i}"), f"class {i % 3}",
                       np.float32(i / 4), i % 2 == 0)  # fmt: skip
    return table


def test_a_table_logged_online_reads_back_as_rows_and_arrow(online: Any) -> None:
    run = gradexp.init(project="tables", settings={"console": "off"})
    table = _predictions()
    gradexp.log({"preds": table, "loss": 0.5}, step=0)
    table.add_data(5, None, None, float("nan"), None)  # the same table, grown, at a later step
    table.add_column("note", ["a", "b", "c", "d", "e", "f"])
    gradexp.log({"preds": table}, step=3)
    gradexp.finish()

    api_run = _api(online).run(run.id)
    assert api_run.tables("preds") == [0, 3]
    first = api_run.table("preds", step=0)
    assert first.columns == ["id", "image", "label", "score", "ok"]
    assert first.types == ["number", "image", "string", "number", "bool"]
    assert [row[0] for row in first.rows] == [0, 1, 2, 3, 4]
    assert first.rows[2][2:] == ["class 2", 0.5, True]
    last = api_run.table("preds")  # the last step by default
    assert last.step == 3 and len(last) == 6 and last.columns[-1] == "note"
    assert last.rows[5][1] is None and math.isnan(last.rows[5][3])
    # an image cell names a run file holding that image (a PNG of the logged size)
    cell = last.rows[1][1]
    assert cell["width"] == 6 and cell["height"] == 6 and cell["caption"] == "digit 1"
    png = api_run.download(cell["path"], root=online.data_dir / "dl")
    assert png.read_bytes().startswith(b"\x89PNG")
    arrow = last.to_arrow()
    assert arrow.column_names == ["id", "image", "label", "score", "ok", "note"]
    assert str(arrow.schema.field("id").type) == "int64"
    assert str(arrow.schema.field("score").type) == "double"
    assert arrow.column("image")[1].as_py()["path"] == cell["path"]
    assert last.to_dicts()[0]["label"] == "class 0"
    with pytest.raises(KeyError, match="at step 1"):
        api_run.table("preds", step=1)
    with pytest.raises(KeyError, match="no table under 'loss'"):
        api_run.table("loss")


def test_offline_tables_sync_and_pandas_frames(gx_env: Path, server: Any) -> None:
    import pandas as pd

    frame = pd.DataFrame({"x": [1, 2, 3], "y": [0.5, None, 2.5], "name": ["a", None, "c"]})
    run = gradexp.init(project="tables-offline", mode="offline", settings={"console": "off"})
    gradexp.log({"frame": gradexp.Table(dataframe=frame)})
    gradexp.finish()
    result = gradexp_cli(
        "sync", env={"GRADEXP_BASE_URL": server.url, "GRADEXP_API_KEY": server.api_key}
    )
    assert result.returncode == 0, result.stderr
    got = _api(server).run(run.id).table("frame")
    assert got.columns == ["x", "y", "name"]
    assert got.rows[0] == [1, 0.5, "a"] and got.rows[2] == [3, 2.5, "c"]
    assert math.isnan(got.rows[1][1]) and got.rows[1][2] is None  # pandas' NaN stays NaN
    assert got.to_pandas()["x"].tolist() == [1, 2, 3]


def test_the_table_file_is_columnar_json_with_its_schema(gx_env: Path) -> None:
    run = gradexp.init(project="tables-file", mode="offline", settings={"console": "off"})
    gradexp.log({"t": gradexp.Table(["a", "b"], [[1, "x"], [2.5, None], [True, "y"]])})
    gradexp.finish()
    value = next(r for r in file_records(run.dir, "history") if "t" in r.values).values["t"]
    assert value["_type"] == "table" and value["rows"] == 3
    assert value["columns"] == [{"name": "a", "type": "mixed"}, {"name": "b", "type": "string"}]
    path = Path(run.dir) / "files" / value["path"]
    raw = path.read_bytes()
    doc = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    assert doc["format"] == "gradexp.table/1"
    assert doc["data"] == [[1, 2.5, True], ["x", None, "y"]]


def test_bad_cells_drop_the_table_once_and_keep_the_rest(gx_env: Path) -> None:
    run = gradexp.init(project="tables-bad", mode="offline", settings={"console": "off"})
    table = gradexp.Table(columns=["a", "b"])
    table.add_data(1, {"nested": "dict"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gradexp.log({"t": table, "loss": 1.0})
        gradexp.log({"t": table, "loss": 2.0})
    messages = [str(w.message) for w in caught if issubclass(w.category, GradexpWarning)]
    assert len(messages) == 1, messages
    assert "cell (0, 'b')" in messages[0] and "dict" in messages[0]
    gradexp.finish()
    rows = [r.values for r in file_records(run.dir, "history")]
    assert [v.get("loss") for v in rows] == [1.0, 2.0] and not any("t" in v for v in rows)


def test_table_shape_errors_say_what_to_fix() -> None:
    table = gradexp.Table(columns=["a", "b"])
    with pytest.raises(ValueError, match=r"a row of 3 cells for a table of 2 columns \(a, b\)"):
        table.add_data(1, 2, 3)
    with pytest.raises(ValueError, match="already has a column named 'a'"):
        table.add_column("a", [])
    with pytest.raises(ValueError, match="column names must be unique"):
        gradexp.Table(columns=["x", "x"])
    table.add_data(1, 2)
    with pytest.raises(ValueError, match=r"column 'c' has 2 cells for a table of 1 rows"):
        table.add_column("c", [1, 2])
    assert gradexp.Table(data=[[1, 2]]).columns == ["col0", "col1"]
    built = gradexp.Table()
    built.add_column("k", [1, 2])
    assert built.data == [[1], [2]] and built.get_column("k") == [1, 2]
