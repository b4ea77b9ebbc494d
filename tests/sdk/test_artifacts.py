"""Artifacts against a real server: versions, aliases, uploads of only what is missing,
lineage both ways, downloads that check every hash, offline runs and `gradexp sync`, an
upload that resumes after being cut off, and every database."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import gradexp
import gradexp.transport.artifacts as transport_artifacts
from gradexp.core.settings import resolve_settings
from gradexp.errors import ApiError
from gradexp.protocol.artifacts import ARTIFACT_CHUNK_BYTES
from gradexp.transport.client import ServerClient
from tests.helpers import run_async

from .conftest import gradexp_cli


def _api(server: Any) -> gradexp.Api:
    return gradexp.Api(base_url=server.url, api_key=server.api_key)


def _point_at(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADEXP_BASE_URL", server.url)
    monkeypatch.setenv("GRADEXP_API_KEY", server.api_key)


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every file upload the SDK starts in this process: ``(sha256, from byte)``."""
    seen: list[tuple[str, int]] = []
    real = transport_artifacts._upload_one

    async def counting(
        client: Any, run_id: str, entry: dict[str, Any], received: int, *a: Any
    ) -> Any:
        seen.append((entry["sha256"], received))
        return await real(client, run_id, entry, received, *a)

    monkeypatch.setattr(transport_artifacts, "_upload_one", counting)
    return seen


def _checkpoint(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _log(
    project: str, files: dict[str, bytes], aliases: list[str] | None = None, **meta: Any
) -> tuple[str, gradexp.Artifact]:
    run = gradexp.init(project=project)
    art = gradexp.Artifact("model", type="model", metadata=meta)
    for name, content in files.items():
        art.add_file(_checkpoint(Path(name), content))
    run.log_artifact(art, aliases=aliases)
    art.wait()
    gradexp.finish()
    return run.id, art


def test_versions_aliases_dedup_and_lineage(
    db_server: Any, monkeypatch: pytest.MonkeyPatch, uploads: list[tuple[str, int]]
) -> None:
    _point_at(db_server, monkeypatch)
    project = f"art-{os.urandom(4).hex()}"
    first_id, v0 = _log(
        project, {"w.bin": b"weights-0" * 1000, "cfg.json": b"{}"}, ["best"], epoch=0
    )
    assert (v0.version, v0.aliases) == ("v0", ["best", "latest"])
    assert len(uploads) == 2

    # The same content again: the same version, and nothing uploaded.
    uploads.clear()
    again_id, same = _log(project, {"w.bin": b"weights-0" * 1000, "cfg.json": b"{}"})
    assert same.version == "v0" and uploads == []

    # New weights: v1; only the changed file is sent; "latest" and "best" move.
    third_id, v1 = _log(
        project, {"w.bin": b"weights-1" * 1000, "cfg.json": b"{}"}, ["best"], epoch=1
    )
    assert v1.version == "v1"
    assert [sha for sha, _ in uploads] == [hashlib.sha256(b"weights-1" * 1000).hexdigest()]
    api = _api(db_server)
    owner = api.viewer()["user"]["name"]
    assert api.artifact(f"{owner}/{project}/model:best").version == "v1"
    assert api.artifact(f"{project}/model:latest").metadata == {"epoch": 1}
    old = api.artifact(f"{project}/model:v0")
    assert old.aliases == [] and old.logged_by is not None and old.logged_by["id"] == first_id
    assert {f["path"] for f in old.files()} == {"w.bin", "cfg.json"}

    # A run that uses v0: recorded as its input; the run lists what it used and logged.
    consumer = gradexp.init(project=project)
    used = consumer.use_artifact("model:v0")
    assert used.version == "v0" and used.digest == v0.digest
    gradexp.finish()
    old = api.artifact(f"{project}/model:v0")
    assert [r["id"] for r in old.used_by] == [consumer.id]
    assert [r["id"] for r in api.artifact(f"{project}/model:v1").used_by] == []
    doc = api._get(f"/runs/{consumer.id}/artifacts")
    assert [(d["name"], d["version"]) for d in doc["used"]] == [("model", 0)]
    logged = api._get(f"/runs/{third_id}/artifacts")["logged"]
    assert [(d["name"], d["version"]) for d in logged] == [("model", 1)]
    assert [a.version for a in api.artifacts(project)] == ["v1", "v0"]
    assert api.artifacts(project, type="dataset") == []
    with pytest.raises(ApiError, match="not found"):
        api.artifact(f"{project}/model:v7")
    assert again_id != first_id


def test_download_checks_hashes_and_refetches_a_corrupted_file(
    online: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = gradexp.init(project="art-download")
    art = gradexp.Artifact("data", type="dataset", description="two shards")
    art.add_dir(_make_dir(tmp_path / "shards"))
    with art.new_file("README.txt") as f:
        f.write("shards of data")
    art.add_reference("s3://bucket/raw/all.tar")
    run.log_artifact(art)
    gradexp.finish()

    fetched = _api(online).artifact("art-download/data:latest")
    assert fetched.description == "two shards"
    root = fetched.download(tmp_path / "out")
    assert (root / "a" / "0.bin").read_bytes() == b"shard-0" * 100
    assert (root / "README.txt").read_text() == "shards of data"
    assert not (root / "all.tar").exists()  # references are recorded, not fetched

    fetches: list[str] = []
    real = type(fetched)._fetch

    def counting(self: Any, entry: dict[str, Any], target: Path) -> None:
        fetches.append(entry["path"])
        real(self, entry, target)

    monkeypatch.setattr(type(fetched), "_fetch", counting)
    fetched.download(root)
    assert fetches == []  # everything is there with the right hash
    (root / "a" / "0.bin").write_bytes(b"shard-X" * 100)  # same size, other bytes
    (root / "b.bin").write_bytes(b"cut")
    fetched.download(root)
    assert sorted(fetches) == ["a/0.bin", "b.bin"]
    assert (root / "a" / "0.bin").read_bytes() == b"shard-0" * 100


def _make_dir(root: Path) -> Path:
    (root / "a").mkdir(parents=True)
    (root / "a" / "0.bin").write_bytes(b"shard-0" * 100)
    (root / "b.bin").write_bytes(b"shard-1" * 100)
    return root


def test_offline_run_then_sync_makes_the_version_and_the_use(gx_env: Path, server: Any) -> None:
    run = gradexp.init(project="art-offline", mode="offline")
    art = gradexp.Artifact("ckpt", type="model")
    with art.new_file("weights.bin", mode="wb") as f:
        f.write(b"offline weights" * 100)
    run.log_artifact(art, aliases=["final"])
    used = run.use_artifact("ckpt:final")
    assert used.version is None and used.aliases == ["final"]
    gradexp.finish()
    env = {"GRADEXP_BASE_URL": server.url, "GRADEXP_API_KEY": server.api_key}
    result = gradexp_cli("sync", env=env)
    assert result.returncode == 0, result.stderr
    api = _api(server)
    version = api.artifact("art-offline/ckpt:final")
    assert version.version == "v0" and version.logged_by["id"] == run.id
    assert [r["id"] for r in version.used_by] == [run.id]
    assert version.download(gx_env / "back").joinpath("weights.bin").read_bytes() == (
        b"offline weights" * 100
    )


def test_an_interrupted_upload_resumes_where_the_server_stands(
    online: Any, tmp_path: Path, uploads: list[tuple[str, int]]
) -> None:
    run = gradexp.init(project="art-resume")
    gradexp.finish()
    size = 2 * ARTIFACT_CHUNK_BYTES + 12345
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for i in range(size // 65536 + 1):
            f.write(hashlib.sha256(str(i).encode()).digest() * 2048)
        f.truncate(size)
    art = gradexp.Artifact("big", type="model")
    art.add_file(big)
    record = art._log_record([], None)
    settings = resolve_settings(mode="online")

    class Cut(Exception):
        pass

    async def upload(cut_after: int | None) -> Any:
        client = ServerClient(settings)
        puts = 0
        real = client.request

        async def request(method: str, path: str, **kw: Any) -> Any:
            nonlocal puts
            if method == "PUT":
                puts += 1
                if cut_after is not None and puts > cut_after:
                    raise Cut  # the process dies mid-upload
            return await real(method, path, **kw)

        client.request = request  # type: ignore[method-assign]
        try:
            return await transport_artifacts.upload_artifact_files(
                client, run.id, [record], lambda r: f"refused {r.status}"
            )
        finally:
            await client.close()

    with pytest.raises(Cut):
        run_async(upload(cut_after=1))
    assert uploads == [(art.digest and record["files"][0]["sha256"], 0)]
    uploads.clear()
    assert run_async(upload(cut_after=None)) is None
    # It went on from the first chunk's end, not from the start.
    assert uploads == [(record["files"][0]["sha256"], ARTIFACT_CHUNK_BYTES)]
    uploads.clear()
    assert run_async(upload(cut_after=None)) is None and uploads == []  # nothing left to send


def test_log_artifact_refuses_bad_names_and_changes_after_logging(online: Any) -> None:
    with pytest.raises(gradexp.GradexpError, match="artifact name"):
        gradexp.Artifact("my/model", type="model")
    run = gradexp.init(project="art-rules")
    art = gradexp.Artifact("m", type="model")
    with art.new_file("a.txt") as f:
        f.write("a")
    with pytest.raises(gradexp.GradexpError, match="alias 'v2'"):
        run.log_artifact(art, aliases=["v2"])
    run.log_artifact(art)
    with pytest.raises(gradexp.GradexpError, match="can no longer change"):
        art.add_reference("https://example.org/x")
    gradexp.finish()


def test_a_large_file_goes_to_s3_as_a_multipart_object(
    start_server: Any, s3_store: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import boto3

    srv = start_server(store_url=s3_store, env=s3_store.env)
    _point_at(srv, monkeypatch)
    size = ARTIFACT_CHUNK_BYTES + 5 * 1024 * 1024 + 7  # two chunks: put together on the server
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(os.urandom(size))
    run = gradexp.init(project="art-s3")
    art = gradexp.Artifact("weights", type="model")
    art.add_file(big, policy="immutable")
    run.log_artifact(art).wait()
    gradexp.finish()
    sha = art.files()[0]["sha256"]
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_store.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    listed = s3.list_objects_v2(Bucket=s3_store.bucket, Prefix="gradexp/projects/")
    keys = {o["Key"]: o for o in listed.get("Contents", [])}
    (key,) = [k for k in keys if k.endswith(f"/artifacts/blobs/{sha}")]
    assert keys[key]["Size"] == size
    assert not [k for k in keys if "/artifacts/uploads/" in k]  # the parts are gone
    assert not [k for k in keys if ".upload-" in k]  # and so is the joined temporary object
    back = _api(srv).artifact("art-s3/weights:v0").download(tmp_path / "back")
    assert hashlib.sha256((back / "big.bin").read_bytes()).hexdigest() == sha


def test_sync_shows_progress_for_a_large_artifact_file(
    gx_env: Path, server: Any, tmp_path: Path
) -> None:
    size = ARTIFACT_CHUNK_BYTES + 3 * 1024 * 1024
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(size))
    run = gradexp.init(project="art-progress", mode="offline")
    art = gradexp.Artifact("ckpt", type="model")
    art.add_file(big)
    run.log_artifact(art)
    gradexp.finish()
    env = {"GRADEXP_BASE_URL": server.url, "GRADEXP_API_KEY": server.api_key}
    result = gradexp_cli("sync", env=env)
    assert result.returncode == 0, result.stderr
    # Not a terminal: the file's line once, when all of it is up.
    assert "ckpt/big.bin 19/19 MiB (100%)" in result.stderr, result.stderr
    assert _api(server).artifact("art-progress/ckpt:latest").version == "v0"
