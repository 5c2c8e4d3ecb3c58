"""fit_gap: one-shot Dice on one training task per structure group beside the validation tasks."""

from __future__ import annotations

import pytest

from hyperkit.config import load_profile
from hyperkit.data.bank import structure_group
from hyperkit.model.hypernet import HyperUNet
from hyperkit.training.fit_gap import fit_gap, group_bank, one_task_per_group
from hyperkit.training.reference import load_reference


def test_one_task_per_group_is_the_first_of_each_group(check_cohort):
    one = one_task_per_group(check_cohort)
    groups = [structure_group(t) for t in one]
    assert len(groups) == len(set(groups)) >= 10
    assert [t for t in one if structure_group(t) == "rib"] == ["totalseg/TotalSegmentator/rib_left_10@CT"]  # as text
    two = one_task_per_group(check_cohort, per_group=2)
    assert set(one) < set(two)
    with pytest.raises(ValueError, match="per_group must be >= 1, got 0"):
        one_task_per_group(check_cohort, per_group=0)


def test_fit_gap_tells_a_trained_model_from_an_untrained_one(check_cohort):
    model, cfg = load_reference("quick")
    with pytest.warns(UserWarning, match="urinary_bladder@CT .present in 1 case.s., needs 2"):
        trained = fit_gap(model, cfg, check_cohort, n_supports=1, n_queries=1)
    assert set(trained.train_per_task) == set(one_task_per_group(check_cohort)) \
        == set(group_bank(check_cohort, cfg).task_ids)
    assert all(0.0 <= d <= 1.0 for d in [*trained.train_per_task.values(), *trained.val_per_task.values()])
    assert trained.gap == pytest.approx(trained.train_dice - trained.val_dice)
    assert list(trained.per_group.values()) == sorted(trained.per_group.values(), reverse=True)
    with pytest.warns(UserWarning, match="left out"):
        untrained = fit_gap(HyperUNet.from_config(load_profile("quick")["model"]).eval(), cfg, check_cohort,
                            n_supports=1, n_queries=1)
    assert trained.train_dice > 0.1 > untrained.train_dice  # the head prior keeps an untrained one at ~0
    with pytest.raises(ValueError, match="got 0 and 1"):
        fit_gap(model, cfg, check_cohort, n_supports=0, n_queries=1)


def test_per_group_is_the_mean_of_the_groups_tasks_highest_first():
    """With two tasks of a group (per_group=2) the group's Dice is their mean; it was the last task's alone."""
    from hyperkit.training.fit_gap import FitGap

    gap = FitGap(0.0, 0.0, {"totalseg/s/rib_left_1@CT": 0.2, "totalseg/s/rib_left_2@CT": 0.6,
                            "totalseg/s/kidney_left@CT": 0.5}, {})
    assert gap.per_group == {"rib": pytest.approx(0.4), "kidney": 0.5} and list(gap.per_group) == ["kidney", "rib"]
