"""A run renamed, tagged or deleted from elsewhere while its script runs, through ``Api``."""

from __future__ import annotations

from typing import Any

import pytest

import gradexp
from gradexp.errors import ApiError

from .conftest import file_records, server_run

FAST = {"retry_cap": 0.5, "batch_interval": 0.2}


def _api(server: Any) -> gradexp.Api:
    return gradexp.Api(base_url=server.url, api_key=server.api_key)


def test_api_update_and_delete(online: Any) -> None:
    api = _api(online)
    runs = []
    for name in ("a", "b", "c"):
        run = gradexp.init(project="sdk-manage", name=name, tags=["old"])
        gradexp.log({"loss": 1.0})
        gradexp.finish()
        runs.append(run.id)
    first = api.run(runs[0]).update(name="baseline", notes="the one to beat", tags=["keep"])
    assert (first.name, first.notes, first.tags) == ("baseline", "the one to beat", ["keep"])
    assert server_run(online, runs[0])["name"] == "baseline"
    assert api.run(runs[0]).update(notes=None).notes is None
    with pytest.raises(ValueError, match="nothing to change"):
        first.update()
    with pytest.raises(ApiError, match="name must be"):
        first.update(name="")

    api.run(runs[1]).delete()
    assert api.delete_runs([runs[2]], project="sdk-manage") == [runs[2]]
    assert [r.id for r in api.runs("sdk-manage")] == [runs[0]]
    with pytest.raises(ApiError) as err:
        api.run(runs[1])
    assert err.value.status == 404
    assert sorted(api.delete_project("sdk-manage")) == [runs[0]]
    assert "sdk-manage" not in {p["name"] for p in api.projects()}


def test_a_run_deleted_while_logging_stops_uploading_with_one_line(
    online: Any, capsys: Any
) -> None:
    run = gradexp.init(project="sdk-deleted", settings=FAST)
    for i in range(10):
        gradexp.log({"i": i})
    assert gradexp.flush(timeout=60) is True
    capsys.readouterr()  # the start banner
    _api(online).run(run.id).delete()
    # The loop goes on: logging never raises, whatever the server says.
    for i in range(10, 200):
        gradexp.log({"i": i})
    assert gradexp.flush(timeout=30) is False  # never acknowledged: the run is gone
    gradexp.finish(timeout=30)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err  # everything the SDK said after the deletion
    assert "was deleted on the server" in lines[0] and str(run.dir) in lines[0]
    assert "gradexp sync" not in err  # syncing could not bring it back
    # The run file kept everything that was logged.
    assert [r.values["i"] for r in file_records(run.dir or "", "history")] == list(range(200))
