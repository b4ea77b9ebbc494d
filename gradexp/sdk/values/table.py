"""``gradexp.Table``: rows of numbers, strings, booleans, ``None`` and images, logged at a step.

A table is mutable until it is logged (``add_data``, ``add_column``); ``log()`` takes a
snapshot of its cells on the caller's thread, so the same table can be extended and
logged again at a later step. The stream thread stores each image cell as its own PNG,
then the table itself as one JSON file in the run's ``files/``, *columnar* (one list of
cells per column) with its schema, and the history row keeps a small ``table`` value that
names the file and repeats the schema (docs/protocol.md, "Values"). JSON rather than
Parquet because the browser reads it directly and the SDK needs no Arrow library;
``Api`` turns it into rows or an Arrow table on the reader's side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from gradexp.protocol.values import encode_float
from gradexp.protocol.wire import (
    MAX_TABLE_BYTES,
    MAX_TABLE_COLUMNS,
    MAX_TABLE_IMAGES,
    MAX_TABLE_ROWS,
)
from gradexp.sdk.values.image import Image, ImageValue

if TYPE_CHECKING:
    from gradexp.protocol.captured import BlobSink

__all__ = ["TABLE_FORMAT", "LoggedTable", "Table", "TableValue", "column_type"]

#: The ``format`` field of a table's file.
TABLE_FORMAT = "gradexp.table/1"
_MAX_NAME = 256  # characters of a column name
_INT64 = 1 << 63


class Table:
    """Rows of cells logged as one value: ``gradexp.log({"preds": table})``.

    ``columns`` names the columns (default ``col0, col1, ...`` from the first row);
    ``data`` is a list of rows, each a sequence with one cell per column; ``dataframe`` a
    pandas or polars DataFrame (its columns and rows; gradexp never imports either). Cells
    are numbers (NaN and infinities kept), strings, booleans, ``None``, or images
    (``gradexp.Image``, or a PIL image). Numpy and torch scalars count as numbers.

    Bad cells do not raise here: ``log()`` warns once for the key and drops the table,
    naming the first bad cell. At most 100,000 rows, 1,000 columns and 10,000 image cells.
    """

    def __init__(
        self,
        columns: Sequence[Any] | None = None,
        data: Iterable[Sequence[Any]] | None = None,
        dataframe: Any = None,
    ) -> None:
        if dataframe is not None:
            if data is not None:
                raise ValueError("Table takes data= or dataframe=, not both")
            if columns is None:
                columns = [str(c) for c in dataframe.columns]
            if hasattr(dataframe, "itertuples"):  # pandas
                data = _pandas_rows(dataframe)
            elif hasattr(dataframe, "iter_rows"):  # polars
                data = dataframe.iter_rows()
            else:
                raise TypeError("dataframe= takes a pandas or polars DataFrame")
        rows = [list(row) for row in data] if data is not None else []
        if columns is None:
            width = len(rows[0]) if rows else 0
            columns = [f"col{i}" for i in range(width)]
        self.columns: list[str] = [str(c) for c in columns]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"Table column names must be unique, got {self.columns}")
        self.data: list[list[Any]] = []
        for row in rows:
            self.add_data(*row)

    def add_data(self, *cells: Any) -> None:
        """Append one row: one cell per column, in column order."""
        if len(cells) != len(self.columns):
            raise ValueError(
                f"a row of {len(cells)} cells for a table of {len(self.columns)} columns "
                f"({', '.join(self.columns)})"
            )
        self.data.append(list(cells))

    def add_column(self, name: str, data: Sequence[Any]) -> None:
        """Append a column: ``data`` holds one cell per existing row."""
        name = str(name)
        if name in self.columns:
            raise ValueError(f"the table already has a column named {name!r}")
        cells = list(data)
        if self.columns and len(cells) != len(self.data):
            raise ValueError(
                f"column {name!r} has {len(cells)} cells for a table of {len(self.data)} rows"
            )
        if not self.columns:  # the first column makes the rows
            self.data = [[] for _ in cells]
        self.columns.append(name)
        for row, cell in zip(self.data, cells, strict=True):
            row.append(cell)

    def get_column(self, name: str) -> list[Any]:
        """The cells of column ``name``, top to bottom."""
        try:
            i = self.columns.index(name)
        except ValueError:
            raise KeyError(f"the table has no column named {name!r}") from None
        return [row[i] for row in self.data]

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"<gradexp.Table {len(self.data)} rows x {len(self.columns)} columns>"

    def _gradexp_capture(self) -> TableValue:
        """A snapshot of the cells as they are now (called by ``log()``, caller's thread)."""
        return TableValue(self.columns, self.data)


def _pandas_rows(frame: Any) -> list[list[Any]]:
    """A pandas DataFrame's rows; a missing value (NaN, ``pd.NA``, ``NaT``) in a column
    that does not hold numbers is an empty cell, as pandas means it (NaN among numbers
    stays NaN)."""
    text_columns = [
        i for i, dtype in enumerate(frame.dtypes) if getattr(dtype, "kind", "O") not in "biuf"
    ]
    rows = [list(row) for row in frame.itertuples(index=False, name=None)]
    for row in rows:
        for i in text_columns:
            cell = row[i]
            if (type(cell) is float and cell != cell) or type(cell).__name__ in (
                "NAType",
                "NaTType",
            ):
                row[i] = None
    return rows


def _cell(value: Any, where: str) -> Any:
    """One cell as a JSON-ready scalar, or an ImageValue (captured now)."""
    if value is None:
        return None
    t = type(value)
    if t is bool or t is str:
        return value
    if t is int:
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{where}: {value} does not fit in 64 bits; log it as a string")
        return value
    if t is float:
        return value if math.isfinite(value) else encode_float(value)
    if isinstance(value, Image):
        return value._gradexp_capture()
    module = t.__module__
    if module.startswith("PIL") and hasattr(value, "tobytes"):
        return Image(value)._gradexp_capture()
    if isinstance(value, (bool, int, float, str)):  # enums, numpy.float64, ...
        for plain in (bool, int, float, str):
            if isinstance(value, plain):
                return _cell(plain(value), where)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy/torch scalars
        item = value.item()
        if type(item) in (bool, int, float):
            return _cell(item, where)
    raise TypeError(
        f"{where} is a {module}.{t.__qualname__}: table cells are numbers, strings, "
        "booleans, None or gradexp.Image"
    )


def column_type(cells: Iterable[Any]) -> str:
    """The schema type of a column of encoded cells (protocol TABLE_COLUMN_TYPES)."""
    kinds: set[str] = set()
    for cell in cells:
        if cell is None:
            continue
        t = type(cell)
        if t is bool:
            kinds.add("bool")
        elif t is int or t is float or (t is dict and cell.get("_type") == "float"):
            kinds.add("number")
        elif t is str:
            kinds.add("string")
        else:
            kinds.add("image")
        if len(kinds) > 1:
            return "mixed"
    return kinds.pop() if kinds else "null"


class TableValue:
    """A table's cells at one ``log()`` call; its images and file made on the stream thread."""

    __slots__ = ("_columns", "_result", "_rows", "nbytes")

    def __init__(self, columns: list[str], rows: list[list[Any]]) -> None:
        if len(columns) > MAX_TABLE_COLUMNS:
            raise ValueError(f"a table of {len(columns)} columns: at most {MAX_TABLE_COLUMNS}")
        if len(rows) > MAX_TABLE_ROWS:
            raise ValueError(f"a table of {len(rows)} rows: at most {MAX_TABLE_ROWS}")
        for name in columns:
            if not name or len(name) > _MAX_NAME:
                raise ValueError(f"table column names must be 1 to {_MAX_NAME} characters")
        images = 0
        nbytes = 64 * len(columns)
        out: list[list[Any]] = []
        for r, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(f"row {r} of the table has {len(row)} cells, not {len(columns)}")
            cells = [_cell(v, f"cell ({r}, {columns[c]!r})") for c, v in enumerate(row)]
            for cell in cells:
                if isinstance(cell, ImageValue):
                    images += 1
                    nbytes += cell.nbytes
                elif type(cell) is str:
                    nbytes += len(cell) + 16
                else:
                    nbytes += 16
            out.append(cells)
        if images > MAX_TABLE_IMAGES:
            raise ValueError(f"a table with {images} images: at most {MAX_TABLE_IMAGES}")
        self._columns = list(columns)
        self._rows = out
        self._result: dict[str, Any] | None = None
        self.nbytes = nbytes

    def encode(self, sink: BlobSink | None = None) -> dict[str, Any]:
        """Store the images and the table's file; the ``table`` value (stream thread)."""
        if self._result is not None:
            return self._result
        if sink is None:
            raise ValueError("a Table needs a run to store its file in")
        width = len(self._columns)
        columns: list[list[Any]] = [[] for _ in range(width)]
        for row in self._rows:
            for c, cell in enumerate(row):
                if isinstance(cell, ImageValue):
                    image = cell.encode(sink)
                    cell = {k: image[k] for k in ("path", "sha256", "size", "width", "height")}
                    if image.get("caption") is not None:
                        cell["caption"] = image["caption"]
                columns[c].append(cell)
        schema = [
            {"name": name, "type": column_type(cells)}
            for name, cells in zip(self._columns, columns, strict=True)
        ]
        doc = {
            "format": TABLE_FORMAT,
            "rows": len(self._rows),
            "columns": schema,
            "data": columns,
        }
        data = orjson.dumps(doc)
        if len(data) > MAX_TABLE_BYTES:
            raise ValueError(
                f"the table is {len(data) >> 20} MiB as JSON: at most {MAX_TABLE_BYTES >> 20} "
                "MiB; log fewer rows, or split it"
            )
        ref = sink.add_file(data, suffix=".table.json", content_type="application/json")
        self._result = {
            "_type": "table",
            "path": ref["path"],
            "sha256": ref["sha256"],
            "size": ref["size"],
            "rows": len(self._rows),
            "columns": schema,
        }
        self._rows = []
        return self._result


class LoggedTable:
    """A table read back from a run (``Api().run(id).table(key)``): its schema and rows.

    ``rows`` holds one list per row; numbers, strings, booleans and ``None`` as logged
    (NaN and infinities as floats), image cells as dicts (``path``, ``sha256``, ``size``,
    ``width``, ``height``, maybe ``caption``) naming the run file that holds the image.
    """

    def __init__(self, doc: dict[str, Any], *, key: str, step: int) -> None:
        from gradexp.protocol.values import decode_value

        if doc.get("format") != TABLE_FORMAT:
            raise ValueError(f"table {key!r} at step {step} is not a {TABLE_FORMAT} file")
        self.key = key
        self.step = step
        self.columns: list[str] = [c["name"] for c in doc["columns"]]
        self.types: list[str] = [c["type"] for c in doc["columns"]]
        data = [[decode_value(v) for v in col] for col in doc["data"]]
        self.rows: list[list[Any]] = [list(r) for r in zip(*data, strict=True)] if data else []
        if not data:
            self.rows = [[] for _ in range(int(doc.get("rows", 0)))]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (
            f"<gradexp LoggedTable {self.key!r} at step {self.step}: "
            f"{len(self.rows)} rows x {len(self.columns)} columns>"
        )

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: cell}`` dicts."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_arrow(self) -> Any:
        """A ``pyarrow.Table``: numbers as int64 (whole numbers only) or float64, strings,
        booleans, images as structs (path, sha256, size, width, height, caption), mixed
        columns as strings (each cell JSON-encoded). Needs pyarrow."""
        try:
            import pyarrow as pa
        except ImportError:
            raise ImportError("to_arrow() needs pyarrow: pip install pyarrow") from None
        image_type = pa.struct(
            [
                ("path", pa.string()),
                ("sha256", pa.string()),
                ("size", pa.int64()),
                ("width", pa.int64()),
                ("height", pa.int64()),
                ("caption", pa.string()),
            ]
        )
        arrays = []
        for c, kind in enumerate(self.types):
            cells = [row[c] for row in self.rows]
            if kind == "number":
                whole = all(type(x) is int or x is None for x in cells)
                arrays.append(pa.array(cells, pa.int64() if whole else pa.float64()))
            elif kind == "string":
                arrays.append(pa.array(cells, pa.string()))
            elif kind == "bool":
                arrays.append(pa.array(cells, pa.bool_()))
            elif kind == "image":
                arrays.append(pa.array(cells, image_type))
            elif kind == "null":
                arrays.append(pa.nulls(len(cells)))
            else:  # mixed
                text = [None if x is None else orjson.dumps(x).decode() for x in cells]
                arrays.append(pa.array(text, pa.string()))
        return pa.Table.from_arrays(arrays, names=self.columns)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (through :meth:`to_arrow`; needs pyarrow and pandas)."""
        return self.to_arrow().to_pandas()
