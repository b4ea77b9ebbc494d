"""The run file: framing, the public reader, torn tails, corrupt frames, run directories."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradexp.runfile import (
    HEADER_SIZE,
    RunDir,
    RunFile,
    RunFileError,
    RunFileWriter,
    find_run_dirs,
    read_records,
)


def _records(n: int, start: int = 1) -> list[dict[str, object]]:
    return [
        {
            "seq": s,
            "type": "history",
            "step": s - 1,
            "time": 1.5,
            "values": {"loss": 1 / s, "k": "x" * (s % 7)},
        }
        for s in range(start, start + n)
    ]


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    writer = RunFileWriter(str(path / "run.gxr"))
    for rec in records:
        writer.append(1, orjson.dumps(rec))
    writer.close()
    return path


def test_round_trip_and_format(tmp_path: Path) -> None:
    records = _records(50)
    run_dir = _write(tmp_path / "r", records)
    raw = (run_dir / "run.gxr").read_bytes()
    # The header is the magic and a little-endian version, as docs/protocol.md says.
    assert raw[:12] == b"GRADEXP\x00RUN\x00"
    assert struct.unpack_from("<I", raw, 12) == (1,)
    length, _crc, rtype = struct.unpack_from("<IIB", raw, HEADER_SIZE)
    assert rtype == 1
    assert orjson.loads(raw[HEADER_SIZE + 9 : HEADER_SIZE + 9 + length]) == records[0]

    reader = RunFile(run_dir)
    got = list(reader)
    assert [r.data for r in got] == records
    assert [r.seq for r in got] == list(range(1, 51))
    assert got[3].step == 3 and got[3].values["loss"] == 0.25
    assert reader.corrupt_frames == 0 and reader.torn_tail_bytes == 0
    assert [r.seq for r in RunFile(run_dir / "run.gxr").records(after_seq=45)] == [
        46,
        47,
        48,
        49,
        50,
    ]


def test_torn_tail_and_flipped_byte(tmp_path: Path) -> None:
    records = _records(20)
    run_dir = _write(tmp_path / "r", records)
    path = run_dir / "run.gxr"
    offsets = [r.offset for r in RunFile(run_dir)]
    data = bytearray(path.read_bytes())
    data[offsets[7] + 15] ^= 0x40  # a flipped bit inside record 8's payload
    del data[-6:]  # a torn tail: the last frame lost its last bytes
    path.write_bytes(bytes(data))

    reader = RunFile(run_dir)
    got = [r.seq for r in reader]
    assert got == [s for s in range(1, 20) if s != 8]
    assert reader.corrupt_frames == 1
    assert reader.torn_tail_bytes > 0


def test_corrupt_length_is_skipped_and_reading_resumes(tmp_path: Path) -> None:
    run_dir = _write(tmp_path / "r", _records(10))
    path = run_dir / "run.gxr"
    offsets = [r.offset for r in RunFile(run_dir)]
    data = bytearray(path.read_bytes())
    data[offsets[4] : offsets[4] + 4] = struct.pack("<I", 10_000_000)  # a huge bogus length
    path.write_bytes(bytes(data))
    reader = RunFile(run_dir)
    assert [r.seq for r in reader] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert reader.corrupt_frames == 1


def test_foreign_and_newer_files_are_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "run.gxr").write_bytes(b"PK\x03\x04 not a run file at all")
    with pytest.raises(RunFileError, match="not a gradexp run file"):
        read_records(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "run.gxr").write_bytes(b"GRADEXP\x00RUN\x00" + struct.pack("<I", 99))
    with pytest.raises(RunFileError, match="v99"):
        read_records(tmp_path / "b")


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    run_dir = _write(tmp_path / "r", [])
    assert read_records(run_dir) == []
    assert RunDir(run_dir).last_seq() == 0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(min_value=0, max_value=30),
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=4000), st.integers(1, 255)), max_size=6
    ),
    junk=st.binary(max_size=64),
)
def test_random_damage_never_crashes_the_reader(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    cut: int,
    flips: list[tuple[int, int]],
    junk: bytes,
) -> None:
    records = _records(n)
    run_dir = _write(tmp_path_factory.mktemp("h"), records)
    path = run_dir / "run.gxr"
    data = bytearray(path.read_bytes())
    flipped = [(HEADER_SIZE + pos % max(1, len(data) - HEADER_SIZE), mask) for pos, mask in flips]
    for i, mask in flipped:
        if i < len(data):
            data[i] ^= mask
    keep = HEADER_SIZE + cut % (len(data) - HEADER_SIZE + 1)
    data = data[:keep] + junk
    path.write_bytes(bytes(data))

    reader = RunFile(run_dir)
    got = list(reader)  # never raises
    # Whatever comes back is an intact original record, in the original order.
    originals = {r["seq"]: r for r in records}
    seqs = [r.seq for r in got]
    assert seqs == sorted(set(seqs))
    for record in got:
        assert record.data == originals[record.seq]
    # Undamaged frames before the first damaged byte are all returned.
    first_damage = min([keep, *(i for i, _ in flipped)])
    intact = [r for r in _offsets(records) if r[1] <= first_damage]
    assert set(seqs) >= {seq for seq, _ in intact}


def _offsets(records: list[dict[str, object]]) -> list[tuple[int, int]]:
    """(seq, end offset of its frame) for records written in order."""
    out, pos = [], HEADER_SIZE
    for rec in records:
        pos += 9 + len(orjson.dumps(rec))
        out.append((int(rec["seq"]), pos))  # type: ignore[call-overload]
    return out


def test_writer_survives_reopening_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "run.gxr"
    w = RunFileWriter(str(path))
    w.append(1, orjson.dumps(_records(1)[0]))
    w.close()
    w = RunFileWriter(str(path))  # reopened: no second header
    w.append(1, orjson.dumps(_records(1, start=2)[0]))
    w.close()
    assert [r.seq for r in RunFile(path)] == [1, 2]


def test_ack_is_replaced_atomically_and_used_as_a_hint(tmp_path: Path) -> None:
    run_dir = _write(tmp_path / "run-20250101_000000-abc", _records(30))
    rd = RunDir(run_dir)
    assert rd.acked_seq == 0 and rd.unsynced() == 30
    offsets = [r.offset for r in RunFile(run_dir)]
    rd.write_ack(20, offsets[20])
    assert rd.read_ack() == (20, offsets[20])
    assert rd.unsynced() == 10
    assert not [p for p in os.listdir(run_dir) if p.endswith(".tmp")]
    # A stale hint (pointing into the middle of a frame) falls back to a full scan.
    rd.write_ack(20, offsets[20] + 3)
    assert rd.unsynced() == 10
    (run_dir / "ack.json").write_text("{not json")
    assert rd.acked_seq == 0


def test_find_run_dirs(tmp_path: Path) -> None:
    root = tmp_path / "gradexp"
    a = _write(root / "run-20250101_000000-aaa", _records(1))
    b = _write(root / "run-20250102_000000-bbb", _records(1))
    (root / "not-a-run").mkdir()
    os.symlink(b.name, root / "latest-run")
    assert [d.path for d in find_run_dirs(tmp_path)] == [str(a), str(b)]
    assert [d.path for d in find_run_dirs(root)] == [str(a), str(b)]
    assert [d.path for d in find_run_dirs(root / "latest-run")] == [str(b)]
    assert find_run_dirs(tmp_path / "nothing-here") == []
