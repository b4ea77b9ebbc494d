"""Lists and tuples as values: a list of images is one gallery, a list of numbers its
histogram, anything else a clear once-per-key warning."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import gradexp
from gradexp.errors import GradexpWarning
from gradexp.protocol.wire import MAX_GALLERY_IMAGES
from gradexp.runfile import RunFile
from gradexp.sdk.values.sequences import capture_sequence


def test_a_list_of_images_is_one_gallery_in_order(sink: Any) -> None:
    images = [gradexp.Image(np.full((2, 3), v, np.uint8), caption=f"c{v}") for v in (10, 20, 30)]
    value = capture_sequence(images).encode(sink)
    assert value["_type"] == "gallery" and [i["caption"] for i in value["images"]] == [
        "c10",
        "c20",
        "c30",
    ]
    assert all(
        i["_type"] == "image" and (i["width"], i["height"]) == (3, 2) for i in value["images"]
    )
    assert len({i["sha256"] for i in value["images"]}) == 3


def test_a_tuple_of_images_is_a_gallery_too(sink: Any) -> None:
    rgb, gray = gradexp.Image(np.zeros((4, 5, 3))), gradexp.Image(np.zeros((4, 4)))
    value = capture_sequence((rgb, gray)).encode(sink)
    assert [i["channels"] for i in value["images"]] == [3, 1]


def test_lists_of_numbers_are_histograms() -> None:
    value = capture_sequence([1, 2, 2, 3.5]).encode(None)
    assert value["_type"] == "histogram" and value["count"] == 4 and value["max"] == 3.5
    nested = capture_sequence([[1, 2], [3, 4]]).encode(None)
    assert nested["count"] == 4 and sum(nested["counts"]) == 4
    assert capture_sequence((True, False)).encode(None)["count"] == 2


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([], "an empty list"),
        (["a", "b"], "a list of str values cannot be logged"),
        ([{"a": 1}], "a list of dict values"),
        ([gradexp.Image(np.zeros((2, 2))), 1.0], "mixes images with other values"),
        (
            [gradexp.Image(np.zeros((2, 2)))] * (MAX_GALLERY_IMAGES + 1),
            f"at most {MAX_GALLERY_IMAGES}",
        ),
    ],
    ids=["empty", "strings", "dicts", "mixed", "too-many"],
)
def test_other_lists_are_dropped_with_a_clear_warning(value: Any, match: str) -> None:
    run = gradexp.init(mode="offline")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GradexpWarning)
        gradexp.log({"bad": value, "ok": 1})
        gradexp.log({"bad": value, "ok": 2})
    gradexp.finish()
    said = [str(w.message) for w in caught if "'bad'" in str(w.message)]
    assert len(said) == 1 and match in said[0]  # once per key
    rows = [r.data["values"] for r in RunFile(run.dir) if r.type == "history"]
    assert rows == [{"ok": 1}, {"ok": 2}]
