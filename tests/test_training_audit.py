"""Algorithm 1's pieces on hand-built inputs: the episode loss (β-weighting, Dice + w·BCE), one-shot
validation (which cases, which threshold, which mean, eval mode), one training step (the lr it reports,
no gradient carried over) and the early-stopping state."""

from __future__ import annotations

import signal

import pytest
import torch
from torch import Tensor, nn

from hyperkit.data.bank import Episode, TaskBank
from hyperkit.model.adapt import segmentation_loss
from hyperkit.training.loop import (RunState, _graceful_interrupt, episode_loss, one_shot_validation, read_jsonl,
                                    training_step)

S = 4  # volumes 4x4x4


def nested_masks(sizes: list[int]) -> Tensor:
    """``(N, 1, S, S, S)`` masks: case k holds the first ``sizes[k]`` voxels in raster order (nested sets:
    Dice(a, b) = 2 min(a, b) / (a + b))."""
    out = torch.zeros(len(sizes), S ** 3)
    for k, n in enumerate(sizes):
        out[k, :n] = 1
    return out.reshape(len(sizes), 1, S, S, S)


def bank(tasks: dict[str, list[int]]) -> TaskBank:
    images = {t: torch.arange(len(v), dtype=torch.float32).reshape(-1, 1, 1, 1, 1).expand(-1, 1, S, S, S).clone()
              for t, v in tasks.items()}  # case k's image is the constant k
    masks = {t: nested_masks(v) for t, v in tasks.items()}
    return TaskBank(images, masks, {t: [f"c{k}" for k in range(len(v))] for t, v in tasks.items()})


class CopySupport(nn.Module):
    """Predicts the support's mask for every query: logit ``high`` on it and -1 elsewhere; records its calls."""

    def __init__(self, high: float = 0.3) -> None:
        super().__init__()
        self.high, self.calls = high, []

    def forward(self, s_img: Tensor, s_msk: Tensor, q_img: Tensor, generator=None) -> tuple[Tensor, Tensor]:
        self.calls.append((self.training, int(s_img.flatten()[0]), [int(q.flatten()[0]) for q in q_img[0]]))
        logits = s_msk * (self.high + 1) - 1  # (1, 1, 1, S, S, S)
        return logits, logits.expand(-1, q_img.shape[1], -1, -1, -1, -1)


def test_one_shot_validation_scores_the_next_cases_of_each_support_and_averages_tasks_equally():
    """Supports 0 and 1 of 4 nested masks (1, 2, 3, 4 voxels), 2 queries each: support s meets cases s+1, s+2.
    Dice: (1,2) 2/3, (1,3) 1/2, (2,3) 4/5, (2,4) 2/3 -> 0.658333; a second task of sizes (2, 2) scores 1.
    The mean is over tasks (0.829167), not over the six pairs."""
    model = CopySupport()
    res = one_shot_validation(model, bank({"a@CT": [1, 2, 3, 4], "b@CT": [2, 2]}), n_queries=2,
                              device=torch.device("cpu"), n_supports=2)
    assert res["per_task"]["a@CT"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5 + 2 / 3) / 4)
    assert res["per_task"]["b@CT"] == pytest.approx(1.0)
    assert res["dice"] == pytest.approx(((2 / 3 + 1 / 2 + 4 / 5 + 2 / 3) / 4 + 1) / 2)
    assert [c[1:] for c in model.calls] == [(0, [1, 2]), (1, [2, 3]), (0, [1]), (1, [0])]


def test_one_shot_validation_never_scores_a_support_on_itself_and_thresholds_logits_at_zero():
    """10 queries asked, 3 other cases: support 0 (1 voxel) meets 2, 3, 4 voxels: (2/3 + 2/4 + 2/5) / 3.
    The logit 0.3 on the support's voxels is foreground (p > 0.5), -1 background; at logit 0 nothing is."""
    res = one_shot_validation(CopySupport(), bank({"a@CT": [1, 2, 3, 4]}), n_queries=10, device=torch.device("cpu"))
    assert res["dice"] == pytest.approx((2 / 3 + 2 / 4 + 2 / 5) / 3)
    none = one_shot_validation(CopySupport(high=0.0), bank({"a@CT": [1, 2, 3, 4]}), n_queries=1,
                               device=torch.device("cpu"))
    assert none["dice"] == pytest.approx(0.0)  # an empty prediction of a non-empty mask


@pytest.mark.parametrize("training", [True, False])
def test_one_shot_validation_runs_in_eval_mode_and_restores_the_mode(training):
    model = CopySupport().train(training)
    one_shot_validation(model, bank({"a@CT": [1, 2]}), n_queries=1, device=torch.device("cpu"))
    assert [c[0] for c in model.calls] == [False]
    assert model.training is training
    refusing = nn.Linear(1, 1).train(training)  # called with a support and a query: TypeError
    with pytest.raises(TypeError):
        one_shot_validation(refusing, bank({"a@CT": [1, 2]}), n_queries=1, device=torch.device("cpu"))
    assert refusing.training is training  # the caller's mode is restored all the same


class Fixed(nn.Module):
    """Support logits a·x and query logits b·x of the input images (two trainable scalars)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(0.7)), nn.Parameter(torch.tensor(-0.4))

    def forward(self, s_img: Tensor, s_msk: Tensor, q_img: Tensor, generator=None) -> tuple[Tensor, Tensor]:
        return self.a * s_img, self.b * q_img


def _episode(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randn(2, 3, 1, S, S, S, generator=g)
    masks = (torch.rand(2, 3, 1, S, S, S, generator=g) > 0.6).float()
    return Episode(["a@CT", "b@CT"], imgs[:, :1], masks[:, :1], imgs[:, 1:2], masks[:, 1:2])


def test_episode_loss_is_beta_support_plus_one_minus_beta_query_with_the_bce_weight():
    """Algorithm 1: β L(support) + (1 − β) L(query), L = Dice + w·BCE of every task (w = 0.25 here)."""
    ep, model = _episode(), Fixed()
    loss, parts = episode_loss(model, ep, 0.3, torch.Generator(), torch.device("cpu"), False, bce_weight=0.25)
    ls = segmentation_loss(0.7 * ep.support_images.flatten(0, 1), ep.support_masks.flatten(0, 1), 0.25)
    lq = segmentation_loss(-0.4 * ep.query_images.flatten(0, 1), ep.query_masks.flatten(0, 1), 0.25)
    assert float(ls) != pytest.approx(float(lq), abs=1e-3)  # the test can tell the two apart
    assert loss.item() == pytest.approx((0.3 * ls + 0.7 * lq).item(), rel=1e-6)
    assert parts == pytest.approx({"loss": loss.item(), "loss_support": float(ls), "loss_query": float(lq)})
    loss.backward()
    assert model.a.grad is not None and model.b.grad is not None


class _Cfg:
    """The train settings :func:`training_step` reads."""
    tasks_per_episode, task_sampling, beta, amp, bce_weight, intensity_remap = 2, "uniform", 0.5, False, 0.5, 0.0


def test_training_step_reports_the_lr_it_used_and_carries_no_gradient_over():
    """The lr reported is the one the step used (LambdaLR factor 1 at step 0, 0.5 at step 1), the schedule moves
    on after it, and each step's gradient is its own episode's alone (zeroed before backward)."""
    tb = bank({"a@CT": [5, 9, 13], "b@CT": [20, 3, 7]})
    tb.images = {t: torch.randn(v.shape, generator=torch.Generator().manual_seed(i)) for i, (t, v)
                 in enumerate(tb.images.items())}
    model = Fixed()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    g = torch.Generator().manual_seed(3)
    _, lr0, _ = training_step(model, opt, sched, tb, _Cfg, g, None, torch.device("cpu"))
    state, before = g.get_state(), {k: v.detach().clone() for k, v in model.named_parameters()}
    _, lr1, ids = training_step(model, opt, sched, tb, _Cfg, g, None, torch.device("cpu"))
    assert (lr0, lr1, opt.param_groups[0]["lr"]) == pytest.approx((0.1, 0.05, 0.025))
    # the second step's gradient, computed again from the same episode and the weights before it
    fresh = Fixed()
    fresh.load_state_dict(before)
    ep = tb.sample(2, torch.Generator().set_state(state))
    assert ep.task_ids == ids
    episode_loss(fresh, ep, 0.5, torch.Generator(), torch.device("cpu"), False, 0.5)[0].backward()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, dict(fresh.named_parameters())[name].grad, rtol=1e-5, atol=1e-7), name
        assert torch.allclose(p.detach(), before[name] - 0.05 * p.grad, rtol=1e-6, atol=1e-7), name


def test_run_state_counts_ties_as_no_improvement_and_episode_zero_never_stops():
    st = RunState()
    assert st.record_validation(0, 0.2, patience=1) and (st.best_dice, st.best_episode) == (0.2, 0)
    assert not st.record_validation(0, 0.1, patience=1) and not st.stopped_early  # episode 0 never stops a run
    assert st.record_validation(5, 0.3, patience=2) and st.bad_validations == 0
    assert not st.record_validation(10, 0.3, patience=2) and st.bad_validations == 1 and not st.stopped_early
    assert not st.record_validation(15, 0.29, patience=2) and st.stopped_early  # patience reached, not exceeded
    assert (st.best_dice, st.best_episode) == (0.3, 5)


def test_training_step_augments_support_and_query_with_their_own_seeds(monkeypatch):
    """Every task's support and query are augmented independently: two seeds per task, drawn from the episode's
    generator after the episode is sampled."""
    from hyperkit.training import loop

    seen = []

    def record(augment, image, mask, seed):
        seen.append(seed)
        return image, mask

    monkeypatch.setattr(loop, "augment_pair", record)
    tb = bank({"a@CT": [5, 9, 13], "b@CT": [20, 3, 7]})
    model = Fixed()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(3)
    training_step(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0), tb, _Cfg, g, object(),
                  torch.device("cpu"))
    replay = torch.Generator().manual_seed(3)
    tb.sample(2, replay)
    expected = torch.randint(2 ** 31, (2, 2), generator=replay).tolist()
    assert seen == [s for pair in expected for s in pair]  # task 0: support, query; task 1: support, query


def test_training_step_remaps_a_tasks_support_and_query_through_one_curve(monkeypatch):
    """``train.intensity_remap``: per task a draw decides, then one random curve maps support and query together
    (one call on the stacked pair); at 0 the step draws nothing more than the episode (the paper's stream)."""
    from hyperkit.data.augment import random_curve
    from hyperkit.training import loop

    calls = []

    def record(x, curve):
        calls.append((tuple(x.shape), curve.clone()))
        return x + 1.0

    seen = []
    real_loss = loop.episode_loss

    def loss_of(net, ep, *args):
        seen.append(ep)
        return real_loss(net, ep, *args)

    monkeypatch.setattr(loop, "remap_intensity", record)
    monkeypatch.setattr(loop, "episode_loss", loss_of)
    tb = bank({"a@CT": [5, 9, 13], "b@CT": [20, 3, 7]})

    class Remap(_Cfg):
        intensity_remap = 1.0

    for cfg, expect_calls in ((_Cfg, 0), (Remap, 2)):
        calls.clear()
        seen.clear()
        model = Fixed()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(3)
        training_step(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0), tb, cfg, g, None,
                      torch.device("cpu"))
        replay = torch.Generator().manual_seed(3)
        tb.sample(2, replay)
        curves = []
        for _ in range(expect_calls):
            assert float(torch.rand((), generator=replay)) < 1.0
            curves.append(random_curve(replay))
        assert len(calls) == expect_calls and all(shape[0] == 2 for shape, _ in calls)
        assert all(torch.equal(c, want) for (_, c), want in zip(calls, curves))
        assert torch.equal(g.get_state(), replay.get_state())  # nothing drawn beyond these
        plain = tb.sample(2, torch.Generator().manual_seed(3))
        shift = 1.0 if expect_calls else 0.0                   # the loss sees the remapped support and query
        assert torch.equal(seen[0].support_images, plain.support_images + shift)
        assert torch.equal(seen[0].query_images, plain.query_images + shift)


def test_training_step_computes_its_rank_share_and_samples_as_the_profile_says():
    """Under DDP rank r of w takes tasks r, r + w, ...: its gradient is that shard's alone. ``task_sampling:
    group`` draws structure groups first: 2 tasks from {rib (3 tasks), liver} always include the liver."""
    tb = bank({f"ts/ds/{name}@CT": sizes for name, sizes in
              [("rib_1", [5, 9, 13]), ("rib_2", [20, 3, 7]), ("rib_3", [6, 6, 8]), ("liver", [9, 2, 4])]})
    tb.images = {t: torch.randn(v.shape, generator=torch.Generator().manual_seed(i)) for i, (t, v)
                 in enumerate(tb.images.items())}

    class Group(_Cfg):
        task_sampling = "group"

    for seed in range(6):
        model, fresh = Fixed(), Fixed()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        g = torch.Generator().manual_seed(seed)
        state = g.get_state()
        _, _, ids = training_step(model, opt, sched, tb, Group, g, None, torch.device("cpu"), rank=1, world=2)
        assert "ts/ds/liver@CT" in ids
        ep = tb.sample(2, torch.Generator().set_state(state), "group").shard(1, 2)
        episode_loss(fresh, ep, 0.5, torch.Generator(), torch.device("cpu"), False, 0.5)[0].backward()
        assert torch.allclose(model.a.grad, fresh.a.grad) and torch.allclose(model.b.grad, fresh.b.grad)


def test_read_jsonl_skips_blank_lines_and_a_missing_file_is_empty(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"episode": 1}\n\n  \n{"episode": 2}\n')
    assert read_jsonl(tmp_path / "m.jsonl") == [{"episode": 1}, {"episode": 2}]
    assert read_jsonl(tmp_path / "none.jsonl") == []


def test_first_ctrl_c_asks_to_stop_the_second_aborts_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with _graceful_interrupt() as flag:
        signal.raise_signal(signal.SIGINT)
        assert flag["stop"]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_resume_interrupted_while_cutting_the_logs_keeps_them(tmp_path, monkeypatch):
    """Resuming cuts metrics.jsonl / validation.jsonl back to the checkpoint's episode by rewriting them whole; an
    interruption during that rewrite left a cut file (the next resume then lost the history or failed on a half
    line). The rewrite is atomic now: interrupted, the old file stays."""
    import json

    import hyperkit.files as files
    from hyperkit.training import loop

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"episode": e}) + "\n" for e in (1, 2, 3)))
    before = path.read_text()

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        loop._truncate_jsonl(path, 2)
    assert path.read_text() == before and list(tmp_path.iterdir()) == [path]
    monkeypatch.undo()
    loop._truncate_jsonl(path, 2)
    assert [r["episode"] for r in loop.read_jsonl(path)] == [1, 2]
