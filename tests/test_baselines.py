"""The supervised baselines' fast paths compute what the plain path computes (BENCHMARKS.md, "Where the time goes")."""

from __future__ import annotations

import copy

import pytest
import torch

from hyperkit.config import SupervisedConfig
from hyperkit.evaluation.baselines import (Samples, SupervisedJob, channel_logits, channels_last_convs, predict,
                                           train_supervised, train_supervised_many)
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.unet import UNet3D

BUDGET = SupervisedConfig(steps=4, batch=2, lr=1e-3, val_every=2, patience=5, augment=True, warmup=0)


def _ball_samples(n: int, side: int, channels: list[int], seed: int) -> Samples:
    """``n`` noisy bright balls ``(n, 1, side, side, side)`` labelled with ``channels`` (cycled)."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.arange(side)] * 3, indexing="ij")).float()
    masks = []
    for i in range(n):
        centre = side / 2 + torch.randint(-2, 3, (3,), generator=g).float()
        masks.append(((grid - centre.view(3, 1, 1, 1)).norm(dim=0) <= side / 5 + i % 2).float())
    m = torch.stack(masks)[:, None]
    return Samples(2 * m - 1 + 0.3 * torch.randn(m.shape, generator=g), m,
                   torch.tensor([channels[i % len(channels)] for i in range(n)]))


def test_own_channel_head_gives_the_loss_and_gradients_of_the_full_head():
    """The All U-Net's step as train_supervised takes it (full-resolution convolutions channels-last,
    only each patch's own head row) equals the plain forward with all outputs, then indexed:
    same loss, same gradient of every parameter."""
    torch.manual_seed(0)
    ref = UNet3D(8, out_channels=3)
    new = copy.deepcopy(ref)
    s = _ball_samples(2, 16, [2, 0], seed=1)
    loss_ref = segmentation_loss(ref(s.images)[torch.arange(2), s.channels][:, None], s.masks)
    loss_ref.backward()
    with channels_last_convs(new):
        loss_new = segmentation_loss(channel_logits(new, s.images, s.channels), s.masks)
    loss_new.backward()
    torch.testing.assert_close(loss_new, loss_ref, rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(ref.named_parameters(), new.parameters()):
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
    # the comparison can fail: the other channel of the head gives another loss
    with torch.no_grad():
        other = segmentation_loss(channel_logits(new, s.images, s.channels.flip(0)), s.masks)
    assert abs(other.item() - loss_ref.item()) > 1e-4


def test_channel_logits_falls_back_to_the_plain_forward_and_checks_channels():
    torch.manual_seed(0)
    net = UNet3D(8, out_channels=3).eval()
    odd = torch.randn(2, 1, 20, 20, 20)  # not a multiple of 16: the plain forward pads and crops
    with torch.no_grad():
        torch.testing.assert_close(channel_logits(net, odd, torch.tensor([1, 2])),
                                   net(odd)[torch.arange(2), torch.tensor([1, 2])][:, None])
        x = torch.randn(3, 1, 16, 16, 16)
        torch.testing.assert_close(predict(net, x, torch.tensor([0, 2, 1]), chunk=2)[:, 0],
                                   net(x)[torch.arange(3), torch.tensor([0, 2, 1])] > 0)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        channel_logits(net, odd, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        channel_logits(net, odd, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="chunk"):
        predict(net, odd, chunk=0)


def test_channels_last_convs_switch_the_full_resolution_convolutions_only_inside_the_block():
    torch.manual_seed(0)
    net = UNet3D(8).eval()
    x = torch.randn(2, 1, 16, 16, 16)
    seen: list[bool] = []
    probe = net.decoder[0].norm1.register_forward_pre_hook(lambda _m, a: seen.append(a[0].is_contiguous()))
    with torch.no_grad():
        plain = net(x)
        with channels_last_convs(net):
            fast = net(x)
        after = net(x)
    probe.remove()
    assert seen == [True, True, True]  # GroupNorm always sees the default layout
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, plain)  # the hooks are gone
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())
    wide = UNet3D(32)
    with channels_last_convs(wide):
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in wide.modules())


def _jobs() -> list[SupervisedJob]:
    """A Conv-like job (one output) and an All-like job (three outputs, balanced), 16^3 patches."""
    jobs = []
    for k, (out, channels) in enumerate([(1, [0]), (3, [0, 1, 2])]):
        torch.manual_seed(10 + k)
        jobs.append(SupervisedJob(UNet3D(8, out_channels=out), _ball_samples(6, 16, channels, seed=k),
                                  _ball_samples(3, 16, channels, seed=5 + k), BUDGET,
                                  torch.Generator().manual_seed(k), balance=out > 1))
    return jobs


def test_side_by_side_training_equals_one_thread_training_one_after_the_other():
    threads = torch.get_num_threads()
    parallel = _jobs()
    done = list(train_supervised_many(parallel, workers=2))
    assert sorted(i for i, _ in done) == [0, 1]
    results = [r for _, r in sorted(done, key=lambda d: d[0])]
    assert torch.get_num_threads() == threads and [r.threads for r in results] == [1, 1]
    sequential = _jobs()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        expected = [train_supervised(j.net, j.train, j.val, j.cfg, j.generator, balance=j.balance)
                    for j in sequential]
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
    for a, b, res, exp in zip(parallel, sequential, results, expected):
        assert res.curve == exp.curve and res.best_step == exp.best_step
        for (name, p), q in zip(a.net.named_parameters(), b.net.parameters()):
            assert torch.equal(p, q), name
            assert p.is_contiguous(), f"{name} left in the training layout"
        assert not a.net.training


def test_train_supervised_many_refuses_no_workers():
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        list(train_supervised_many(_jobs(), workers=0))


def test_precision_casts_only_where_bf16_is_native(monkeypatch):
    from hyperkit.model import precision as prec

    assert prec.precision("cpu", False) == "fp32"
    monkeypatch.setattr(prec, "bf16_native", lambda device: False)
    assert prec.precision("cpu", True) == "fp32"
    with prec.autocast("cpu", True):
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.float32
    monkeypatch.setattr(prec, "bf16_native", lambda device: True)
    assert prec.precision("cpu", True) == "bf16"
    with prec.autocast("cpu", True):
        assert torch.ones(2, 2).mm(torch.ones(2, 2)).dtype == torch.bfloat16


@pytest.mark.parametrize("amp", [False, True])
def test_train_supervised_steps_in_bf16_only_with_amp(monkeypatch, amp):
    """With ``amp`` the training's 3³ convolutions (steps and validations) compute in bf16 (the weights
    and the loss stay fp32, and so do predictions after training) and the result says so; without it
    everything is fp32."""
    from hyperkit.model import precision as prec

    monkeypatch.setattr(prec, "bf16_native", lambda device: True)  # whatever this CPU has
    torch.manual_seed(0)
    net = UNet3D(8)
    seen: list[tuple[bool, torch.dtype]] = []
    net.down[0].register_forward_hook(lambda m, a, out: seen.append((torch.is_grad_enabled(), out.dtype)))
    s = _ball_samples(4, 16, [0], seed=2)
    cfg = SupervisedConfig(steps=2, batch=2, lr=1e-3, val_every=2, patience=5, augment=False, warmup=0, amp=amp)
    res = train_supervised(net, s, s, cfg, torch.Generator().manual_seed(0))
    steps = {dtype for grad, dtype in seen if grad}
    validations = {dtype for grad, dtype in seen if not grad}
    assert steps == ({torch.bfloat16} if amp else {torch.float32})
    assert steps == validations
    assert res.precision == ("bf16" if amp else "fp32")
    assert all(p.dtype == torch.float32 for p in net.parameters())
    seen.clear()
    predict(net, s.images)
    assert {dtype for _, dtype in seen} == {torch.float32}
