"""The method registry: the built-in methods are registered, and a new method plugs into evaluate()."""

from __future__ import annotations

import pytest
import torch

from hyperkit.config import METHODS, ONE_SHOT_METHODS
from hyperkit.evaluation import evaluate
from hyperkit.evaluation.methods import REGISTRY, OneShotMethod, methods_for, register
from test_evaluation import LIVER, _bank, _cfg


def test_every_protocol_method_is_registered_once_in_run_order():
    assert set(METHODS) <= set(REGISTRY)
    assert [m for m in REGISTRY if m in ONE_SHOT_METHODS] == list(ONE_SHOT_METHODS)
    assert all(REGISTRY[m].one_shot == (m in ONE_SHOT_METHODS) for m in METHODS)
    assert [m.name for m in methods_for(["conv_unet", "hyper_unet"])] == ["hyper_unet", "conv_unet"]
    with pytest.raises(ValueError, match="unknown method"):
        methods_for(["magic"])
    with pytest.raises(ValueError, match="registered already"):
        register(REGISTRY["copy_support"])


class _Empty(OneShotMethod):
    name = "empty_test"

    def fit(self, ctx, task, draw, images, masks):
        return lambda query: torch.zeros_like(query)


def test_a_new_method_plugs_in(tmp_path):
    register(_Empty())
    try:
        bank = _bank([LIVER])
        rows, _ = evaluate(None, bank, _cfg(), tmp_path / "r.csv", methods=["copy_support", "empty_test"],
                           progress=False)
    finally:
        del REGISTRY["empty_test"]
    empty = [r for r in rows if r["method"] == "empty_test"]
    copied = [r for r in rows if r["method"] == "copy_support"]
    assert len(empty) == len(copied) == 2 * 2  # 2 draws x 2 test cases, the same cases
    assert [(r["draw"], r["case"]) for r in empty] == [(r["draw"], r["case"]) for r in copied]
    assert all(r["dsc"] == 0.0 for r in empty)
