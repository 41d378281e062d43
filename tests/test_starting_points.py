"""A run starts where its paper started, or is told not to: the refusal is wired into
``train_and_test`` before anything is built, and an explicit ``none`` is recorded."""

from __future__ import annotations

import pytest

from cvbench.identity import weights_fingerprint
from cvbench.run import RunSpec, train_and_test
from methods.registry import get_method
from methods.weights import StartingPointError


def test_a_paper_preset_on_a_real_dataset_is_refused_before_any_work() -> None:
    spec = RunSpec(method="iframe", preset="paper", dataset="ucf101", root="/nonexistent")
    with pytest.raises(StartingPointError, match="pretrained"):
        train_and_test(spec)  # refused before the (absent) dataset is read


def test_an_explicit_none_is_random_and_says_so() -> None:
    config = get_method("iframe").make_config("tiny", {"pretrained": "none (explicit)"}, "test")
    (entry,) = weights_fingerprint(config)
    assert entry == {"option": "pretrained", "file": "none", "sha256": None, "explicit": True}
    config = get_method("iframe").make_config("tiny", {"pretrained": "none"}, "test")
    assert weights_fingerprint(config) == [{"option": "pretrained", "file": "none", "sha256": None}]
