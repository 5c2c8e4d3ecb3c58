"""What the supervised baselines promise, checked where the fast-path tests of test_baselines.py cannot fail
(found by the baselines mutation audit): the sample checks, the channels-last switch's exact set of
convolutions, channel_logits' checks, predict's eval mode and strict threshold, validation Dice by hand,
AdamW on Dice + w·BCE step by step, the selection rule (ties, patience, warmup, final validation, best
weights kept) against scripted validations, the draws (uniform or balanced, seeded by the generator),
how train_supervised_many runs its jobs, and the central blob by hand."""

from __future__ import annotations

import copy
import functools
import os
import signal
import threading
import time

import pytest
import torch
from torch import nn

from hyperkit.config import SupervisedConfig
from hyperkit.evaluation import baselines
from hyperkit.evaluation.baselines import (Samples, SupervisedJob, SupervisedResult, central_blob, channel_logits,
                                           channels_last_convs, predict, train_supervised, train_supervised_many)
from hyperkit.side_by_side import side_by_side
from hyperkit.stopping import Stopped, stop_point
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.unet import UNet3D


def _cfg(**kw) -> SupervisedConfig:
    base = dict(steps=4, batch=2, lr=1e-2, val_every=1, patience=10, augment=False, warmup=0)
    return SupervisedConfig(**{**base, **kw})


def _samples(n: int, side: int = 4, channels: list[int] | None = None) -> Samples:
    """Patch ``i`` is the constant ``i`` (so a drawn image names its patch), its mask a corner voxel."""
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1, 1).expand(n, 1, side, side, side).clone()
    masks = torch.zeros(n, 1, side, side, side)
    masks[:, :, 0, 0, 0] = 1
    return Samples(images, masks, torch.tensor(channels if channels is not None else [0] * n))


class _Scalar(nn.Module):
    """A one-parameter "segmenter" for the cheap stand-in of channel_logits below."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))


@pytest.fixture
def cheap(monkeypatch):
    """train_supervised with its forward and its validation replaced: each step's logits are the net's one
    parameter (so AdamW moves it every step), each validation returns the next scripted Dice and records the
    parameter it saw. Records every step's drawn images, channels and the net's mode."""
    rec: dict[str, list] = {"draws": [], "w": [], "scripted": []}

    def fake_logits(net, imgs, channels):
        rec["draws"].append((imgs[:, 0, 0, 0, 0].long().tolist(), channels.tolist(), net.training))
        return net.w.view(1, 1, 1, 1, 1).expand(imgs.shape[0], 1, *imgs.shape[2:])

    def fake_val(net, val, amp=False):
        rec["w"].append(net.w.item())
        return rec["scripted"][len(rec["w"]) - 1]

    monkeypatch.setattr(baselines, "channel_logits", fake_logits)
    monkeypatch.setattr(baselines, "_val_dice", fake_val)
    return rec


# ---------------------------------------------------------------------------- samples, channels-last, logits
def test_samples_refuse_inconsistent_or_no_patches_and_cat_keeps_the_order():
    img, ch = torch.zeros(2, 1, 4, 4, 4), torch.zeros(2, dtype=torch.long)
    assert len(Samples(img, img.clone(), ch)) == 2
    for images, masks, channels in [(img, img[:, :, :3], ch), (img, img, torch.zeros(3, dtype=torch.long)),
                                    (img[:, 0], img[:, 0], ch)]:
        with pytest.raises(ValueError, match="inconsistent samples"):
            Samples(images, masks, channels)
    with pytest.raises(ValueError, match="no samples"):
        Samples(img[:0], img[:0], ch[:0])
    a, b = _samples(2, channels=[0, 1]), _samples(3, channels=[2, 2, 1])
    both = Samples.cat([a, b])
    assert both.images[:, 0, 0, 0, 0].tolist() == [0, 1, 0, 1, 2] and both.channels.tolist() == [0, 1, 2, 2, 1]
    assert torch.equal(both.masks, torch.cat([a.masks, b.masks]))


@pytest.mark.parametrize("width", [8, 16])
def test_channels_last_convs_switch_exactly_the_three_full_resolution_convolutions(width):
    torch.manual_seed(0)
    net = UNet3D(width).eval()
    convs = {name: m for name, m in net.named_modules() if isinstance(m, nn.Conv3d)}
    seen: dict[str, bool] = {}
    with channels_last_convs(net):  # probes after the switch's own hooks: they see what the convolution gets
        probes = [m.register_forward_pre_hook(lambda _m, a, name=name: seen.__setitem__(
            name, not a[0].is_contiguous() and a[0].is_contiguous(memory_format=torch.channels_last_3d)))
            for name, m in convs.items()]
        with torch.no_grad():
            net(torch.randn(1, 1, 16, 16, 16))
    for p in probes:
        p.remove()
    assert {name for name, last in seen.items() if last} == {"encoder.0.conv2", "decoder.0.conv1", "decoder.0.conv2"}
    plain = nn.Conv3d(1, 8, 3)  # not a UNet3D: nothing to switch
    with channels_last_convs(plain):
        assert not plain._forward_pre_hooks


def test_channel_logits_checks_negative_channels_every_side_and_an_empty_batch():
    torch.manual_seed(0)
    net = UNet3D(8, out_channels=3).eval()
    x = torch.randn(2, 1, 20, 16, 16)  # only the first side is not a multiple of 16: the plain forward
    with torch.no_grad():
        torch.testing.assert_close(channel_logits(net, x, torch.tensor([2, 1])),
                                   net(x)[torch.arange(2), torch.tensor([2, 1])][:, None])
        assert channel_logits(net, x[:0, :, :16], torch.zeros(0, dtype=torch.long)).shape == (0, 1, 16, 16, 16)
    with pytest.raises(ValueError, match=r"\[-1, 0\] outside the net's outputs 0..2"):
        channel_logits(net, x, torch.tensor([-1, 0]))


def test_predict_thresholds_strictly_in_eval_mode_and_restores_the_mode():
    x = torch.tensor([-1.0, 0.0, 1e-6, 2.0]).view(1, 1, 1, 1, 4)
    assert predict(nn.Identity(), x).flatten().tolist() == [False, False, True, True]  # logit > 0
    dropout = nn.Dropout(0.5)  # in training mode it would zero about half of the logits
    ones = torch.ones(3, 1, 4, 4, 4)
    for training in (True, False):
        dropout.train(training)
        assert predict(dropout, ones, chunk=2).all()
        assert dropout.training == training
    net = UNet3D(8).train()
    with pytest.raises(ValueError, match="outside the net's outputs"):
        predict(net, torch.randn(1, 1, 16, 16, 16), torch.tensor([3]))
    assert net.training  # a refused input leaves the caller's mode as it was


# ---------------------------------------------------------------------------- train_supervised
def test_validation_dice_before_training_is_the_mean_dice_of_the_predictions():
    """A U-Net whose head says "foreground" everywhere scores 2|m| / (|m| + S^3) on each validation mask."""
    torch.manual_seed(0)
    net = UNet3D(8)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(5.0)
    val = _samples(2, side=16)
    val.masks[1, 0, :2, :2, :2] = 1  # 8 voxels; the first mask has 1
    res = train_supervised(net, _samples(1, side=16), val, _cfg(steps=1), torch.Generator().manual_seed(0))
    expected = (2 * 1 / (1 + 16 ** 3) + 2 * 8 / (8 + 16 ** 3)) / 2
    assert res.curve[0] == (0, pytest.approx(expected, rel=1e-6))


def test_train_supervised_steps_are_adamw_on_dice_plus_weighted_bce(monkeypatch):
    """One patch, so every batch is that patch twice: the kept weights (each validation better than the last)
    are those of AdamW steps on Dice + w·BCE of the patch, taken by hand."""
    torch.manual_seed(0)
    net = UNet3D(8)
    ref = copy.deepcopy(net)
    train = _samples(1, side=16)
    train.images.copy_(torch.randn(train.images.shape))
    scores = iter([0.0, 0.1, 0.2, 0.3])
    monkeypatch.setattr(baselines, "_val_dice", lambda *a, **k: next(scores))
    cfg = _cfg(steps=3, lr=3e-2, bce_weight=0.25)
    res = train_supervised(net, train, train, cfg, torch.Generator().manual_seed(0))
    assert res.best_step == 3 and not net.training
    opt = torch.optim.AdamW(ref.parameters(), lr=cfg.lr)
    with channels_last_convs(ref):  # as train_supervised computes
        for _ in range(cfg.steps):
            loss = segmentation_loss(ref(train.images.repeat(2, 1, 1, 1, 1)), train.masks.repeat(2, 1, 1, 1, 1),
                                     0.25)
            opt.zero_grad()
            loss.backward()
            opt.step()
    # the same numbers up to rounding, which Adam's normalisation magnifies where a gradient is near 0
    far = torch.cat([((p - q).abs() > 1e-4).flatten() for p, q in zip(net.parameters(), ref.parameters())])
    assert far.float().mean() < 1e-3


def test_selection_rule_ties_patience_and_the_kept_weights(cheap):
    """Scripted Dice 0.5 (before training), 0.5 (a tie is no improvement), 0.7 (best), 0.6, 0.7 (a tie):
    the second non-improvement after the best exhausts patience 2 at step 4; step 2's weights are kept."""
    cheap["scripted"] = [0.5, 0.5, 0.7, 0.6, 0.7, 0.9, 0.9]
    net = _Scalar()
    res = train_supervised(net, _samples(3), _samples(1), _cfg(steps=10, patience=2), torch.Generator())
    assert res.curve == [(0, 0.5), (1, 0.5), (2, 0.7), (3, 0.6), (4, 0.7)]
    assert (res.best_dice, res.best_step, res.steps, res.stopped_early) == (0.7, 2, 4, True)
    assert len(set(cheap["w"])) == 5  # every step moved the weight
    assert net.w.item() == cheap["w"][2] and not net.training
    assert all(training for _, _, training in cheap["draws"])


def test_warmup_validations_do_not_use_patience(cheap):
    cheap["scripted"] = [0.5] + [0.4] * 9
    net = _Scalar()
    res = train_supervised(net, _samples(3), _samples(1), _cfg(steps=9, patience=2, warmup=2), torch.Generator())
    assert (res.best_step, res.steps, res.stopped_early) == (0, 4, True)  # bad validations at steps 3 and 4
    assert res.seconds_to_best == 0.0 and net.w.item() == cheap["w"][0] == 0.0  # the weights before training


def test_the_last_step_is_validated_and_a_full_run_did_not_stop_early(cheap):
    cheap["scripted"] = [0.1, 0.2, 0.3, 0.4, 0.5]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        res = train_supervised(_Scalar(), _samples(3), _samples(1), _cfg(steps=5, val_every=2), torch.Generator())
    finally:
        torch.set_num_threads(threads)
    assert [s for s, _ in res.curve] == [0, 2, 4, 5] and len(cheap["draws"]) == 5
    assert (res.best_step, res.steps, res.stopped_early, res.threads) == (5, 5, False, 2)
    assert 0 < res.seconds_to_best <= res.seconds


def test_draws_with_replacement_from_the_generator_with_each_patch_own_channel(cheap, monkeypatch):
    seeds: list[int] = []

    def fake_augment(augment, image, mask, seed):
        seeds.append(seed)
        return image, mask

    monkeypatch.setattr(baselines, "augment_pair", fake_augment)
    train = _samples(3, channels=[2, 0, 1])
    runs = []
    for global_seed in (1, 2):  # the global generator must not matter
        cheap["draws"].clear()
        seeds.clear()
        cheap["w"].clear()
        cheap["scripted"] = [0.0] * 10
        torch.manual_seed(global_seed)
        train_supervised(_Scalar(), train, _samples(1), _cfg(steps=6, batch=5, augment=True),
                         torch.Generator().manual_seed(7))
        runs.append((copy.deepcopy(cheap["draws"]), list(seeds)))
    assert runs[0] == runs[1]
    draws, seeds = runs[0]
    assert len(seeds) == 6 * 5 and len(set(seeds)) == len(seeds)  # one seed per augmented patch
    for patches, channels, _ in draws:
        assert channels == [[2, 0, 1][p] for p in patches]
    assert {p for patches, _, _ in draws for p in patches} == {0, 1, 2}  # batch 5 > 3 patches: with replacement


@pytest.mark.parametrize("balance, share", [(False, 0.25), (True, 0.5)])
def test_balance_draws_every_channel_equally_often(cheap, balance, share):
    """Six patches of channel 0 and two of channel 1: uniform draws give channel 1 a quarter of the batch
    entries, balanced ones a half (800 draws: a standard error of under 0.02)."""
    cheap["scripted"] = [0.0] * 201
    train = _samples(8, channels=[0] * 6 + [1] * 2)
    train_supervised(_Scalar(), train, _samples(1), _cfg(steps=200, batch=4, patience=200),
                     torch.Generator().manual_seed(0), balance=balance)
    channels = [c for _, chans, _ in cheap["draws"] for c in chans]
    assert len(channels) == 800 and abs(sum(channels) / 800 - share) < 0.06


# ---------------------------------------------------------------------------- train_supervised_many
@pytest.fixture
def recorded(monkeypatch):
    """train_supervised replaced by a recorder of where, at how many threads and with which arguments each
    job ran (jobs with ``desc`` "together" wait for each other: they must run side by side)."""
    calls: list[dict] = []
    together = threading.Barrier(2, timeout=5)
    lock = threading.Lock()

    def fake(net, train, val, cfg, generator, progress=False, desc="supervised", balance=False):
        with lock:
            calls.append({"desc": desc, "balance": balance, "thread": threading.current_thread(),
                          "threads": torch.get_num_threads(), "flush": (torch.tensor([1e-39]) * 1.5).item() == 0})
        if desc == "together":
            together.wait()
        return SupervisedResult(len(desc), 0, 0, 0.0, 0.0, False, [], torch.get_num_threads())

    monkeypatch.setattr(baselines, "train_supervised", fake)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield calls
    torch.set_num_threads(threads)


def _job(desc: str, balance: bool = False) -> SupervisedJob:
    return SupervisedJob(_Scalar(), _samples(1), _samples(1), _cfg(), torch.Generator(), desc, balance)


def test_many_runs_jobs_side_by_side_in_order_at_one_thread_each(recorded):
    assert SupervisedJob(_Scalar(), _samples(1), _samples(1), _cfg(), torch.Generator()).balance is False
    jobs = [_job("together", balance=True), _job("together"), _job("last", balance=True)]
    done = dict(train_supervised_many(jobs))  # default: as many workers as torch threads (2)
    assert {i: r.best_dice for i, r in done.items()} == {0: 8, 1: 8, 2: 4}
    assert [c["desc"] for c in recorded] == ["together", "together", "last"]  # started in the order given
    assert all(c["thread"] is not threading.main_thread() and c["threads"] == 1 and c["flush"] for c in recorded)
    assert sorted(c["balance"] for c in recorded) == [False, True, True]
    assert torch.get_num_threads() == 2


def test_one_worker_runs_the_jobs_in_the_calling_thread_at_its_thread_count(recorded):
    jobs = [_job("a", balance=True), _job("b")]
    assert [i for i, _ in train_supervised_many(jobs, workers=1)] == [0, 1]
    assert [(c["desc"], c["balance"], c["threads"]) for c in recorded] == [("a", True, 2), ("b", False, 2)]
    assert all(c["thread"] is threading.main_thread() for c in recorded)


@pytest.mark.parametrize("workers", [None, 4])
def test_a_lone_job_runs_as_it_would_beside_others(recorded, workers):
    """One job (what a resumed evaluation has left, or one target asked for alone) trains at one torch thread
    with denormals flushed, as each job of a pool does, so that it computes the numbers of the full run."""
    assert [i for i, _ in train_supervised_many([_job("alone", balance=True)], workers=workers)] == [0]
    assert [(c["desc"], c["balance"], c["threads"], c["flush"]) for c in recorded] == [("alone", True, 1, True)]
    assert recorded[0]["thread"] is not threading.main_thread() and torch.get_num_threads() == 2
    assert list(side_by_side([], workers=workers)) == []


def test_side_by_side_hands_a_failing_job_to_the_caller_and_restores_the_thread_count():
    threads = torch.get_num_threads()

    def boom() -> int:
        raise RuntimeError("job 1 failed")

    try:
        torch.set_num_threads(2)
        with pytest.raises(RuntimeError, match="job 1 failed"):
            list(side_by_side([lambda: torch.get_num_threads(), boom], workers=2))
        assert torch.get_num_threads() == 2
        assert sorted(side_by_side([lambda: torch.get_num_threads()] * 3, workers=2)) == [(0, 1), (1, 1), (2, 1)]
        with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
            list(side_by_side([lambda: 1], workers=0))
    finally:
        torch.set_num_threads(threads)


def test_side_by_side_stops_running_jobs_at_their_next_stop_point_when_the_caller_leaves():
    """A caller that leaves (an interrupt, an error) does not wait for the running jobs to end: they raise
    Stopped at their next stop_point; a job still queued when the caller leaves never starts."""
    outcome: dict[str, str] = {}
    started = threading.Barrier(2, timeout=10)

    def slow(name: str) -> str:
        started.wait()  # both jobs run before the caller leaves
        for _ in range(3000):  # 30 s if nobody stops it
            try:
                stop_point()
            except Stopped:
                outcome[name] = "stopped"
                raise
            time.sleep(0.01)
        outcome[name] = "ran to its end"
        return name

    def boom() -> str:
        started.wait()
        raise RuntimeError("job failed")

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(RuntimeError, match="job failed"):  # an error in one job: the other stops
            list(side_by_side([functools.partial(slow, "a"), boom], workers=2))
        assert outcome == {"a": "stopped"}
        started.reset()
        # Ctrl-C while the caller waits; Python's own handler, whatever the test process inherited (a shell
        # starts background jobs with SIGINT ignored)
        handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        interrupt = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        interrupt.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                list(side_by_side([functools.partial(slow, "b"), functools.partial(slow, "c"),
                                   lambda: outcome.setdefault("d", "started")], workers=2))
        finally:
            interrupt.cancel()
            signal.signal(signal.SIGINT, handler)
        assert outcome == {"a": "stopped", "b": "stopped", "c": "stopped"}  # and "d", queued, never started
    finally:
        torch.set_num_threads(threads)
    stop_point()  # outside a pool: nothing happens


# ---------------------------------------------------------------------------- central blob
def test_central_blob_is_the_nearest_voxels_to_the_centre_voxel_ties_in_voxel_order():
    shape = (5, 6, 9)  # not a cube, one side even: the centre voxel is (2, 3, 4)

    def blob(*counts: int) -> torch.Tensor:
        supports = torch.zeros(len(counts), 1, *shape)
        for k, n in enumerate(counts):
            supports[k].view(-1)[:n] = 1
        return central_blob(supports)[0]

    assert blob(1).nonzero().tolist() == [[2, 3, 4]]
    assert blob(1, 2, 5).sum() == 3  # mean 8/3 rounds to 3
    # the centre and the first of its six face neighbours in voxel order
    assert blob(2).nonzero().tolist() == [[1, 3, 4], [2, 3, 4]]
    cross = {(2, 3, 4), (1, 3, 4), (3, 3, 4), (2, 2, 4), (2, 4, 4), (2, 3, 3), (2, 3, 5)}
    assert {tuple(v) for v in blob(7).nonzero().tolist()} == cross
