"""The naming rules of ``gradexp.protocol.names``: the character-set checks init() uses
and the regular expressions the server matches with are the same rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradexp
from gradexp.errors import GradexpError
from gradexp.protocol.names import (
    PROJECT_NAME_RE,
    RUN_ID_RE,
    project_name_problem,
    run_id_problem,
)

# Mostly characters near the rules' edges, so that both answers come up often.
NAMEISH = st.text(alphabet=st.sampled_from("aZ09._-/ #é\x00"), max_size=140)


@given(NAMEISH)
def test_run_id_rule_matches_its_regex(text: str) -> None:
    assert (run_id_problem(text) is None) == bool(RUN_ID_RE.fullmatch(text))


@given(NAMEISH)
def test_project_name_rule_matches_its_regex(text: str) -> None:
    assert (project_name_problem(text) is None) == bool(PROJECT_NAME_RE.fullmatch(text))


def test_the_lengths_at_the_edges() -> None:
    assert run_id_problem("a" * 64) is None and run_id_problem("a" * 65) is not None
    assert project_name_problem("a" * 128) is None
    assert project_name_problem("a" * 129) is not None
    assert project_name_problem(".hidden") is not None and run_id_problem("") is not None
    assert run_id_problem(12) is not None and project_name_problem(None) is not None


def test_init_refuses_a_bad_id_or_project_with_the_rules_message(tmp_path: object) -> None:
    with pytest.raises(GradexpError, match="run id 'a b' is not valid"):
        gradexp.init(id="a b", mode="offline", dir=str(tmp_path))
    with pytest.raises(GradexpError, match="project name '-x' is not valid"):
        gradexp.init(project="-x", mode="offline", dir=str(tmp_path))


@pytest.mark.parametrize("run_id", ["abc.def", "v1.2-seed_3", "-x", "_", "a.b.c", "9"])
def test_run_ids_may_hold_dots(run_id: str) -> None:
    assert run_id_problem(run_id) is None
    assert RUN_ID_RE.fullmatch(run_id)


@pytest.mark.parametrize(
    "run_id", [".", "..", ".abc", "abc.", "a..b", "a/b", "a\\b", "a%2F", "a b"]
)
def test_run_ids_that_would_be_unsafe_in_a_path_or_url(run_id: str) -> None:
    assert run_id_problem(run_id) is not None
    assert not RUN_ID_RE.fullmatch(run_id)
