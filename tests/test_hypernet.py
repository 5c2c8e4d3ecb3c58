"""The hypernetwork (eqs. 1, 6, 7, H, tiling), standalone generated U-Nets, batched path, gradient step."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F

from hyperkit import HyperUNet, UNet3D, gradient_step
from hyperkit.errors import ConfigError
from hyperkit.model import parameter_table, segmentation_loss, tile_filters
from hyperkit.model.context import channel_permutations

TINY = dict(base_width=8, n_patches=8, samplings=2, hidden=32, pos_dim=8, zstar_hidden=16, zstar_dim=8, head_hidden=16)
SIDE = 32


def tiny(**kw) -> HyperUNet:
    torch.manual_seed(0)
    return HyperUNet(**{**TINY, **kw})


def support(k: int = 1, b: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Blobby foreground with brighter intensity; shape (K, 1, S, S, S) or (B, K, 1, S, S, S)."""
    g = torch.Generator().manual_seed(seed)
    lead = (k,) if b is None else (b, k)
    masks = torch.zeros(*lead, 1, SIDE, SIDE, SIDE)
    centre = torch.randint(10, 22, (*lead, 3), generator=g)
    grid = torch.stack(torch.meshgrid(*(torch.arange(SIDE),) * 3, indexing="ij"), -1)
    dist = (grid - centre[..., None, None, None, :]).float().norm(dim=-1)
    masks[..., 0, :, :, :] = (dist < 6).float()
    images = torch.randn(masks.shape, generator=g) * 0.5 + 2 * masks
    return images, masks


@pytest.fixture(scope="module")
def model() -> HyperUNet:
    return tiny().eval()


# (constructor overrides, B, K, Q) -> support/query logits shapes
EPISODE_CASES = [
    ({}, 1, 1, 1),
    ({}, 2, 1, 1),
    ({}, 2, 2, 1),
    ({}, 1, 3, 0),
    ({"base_width": 16, "c_base": 8}, 1, 1, 1),
    ({"c_base": 4}, 2, 1, 2),
    ({"task_norm": False, "task_pe": False, "bound_kernels": False}, 2, 1, 1),
]


@pytest.mark.parametrize("kw, b, k, q", EPISODE_CASES)
def test_forward_episode_shapes(kw, b, k, q):
    hyper = tiny(**kw)
    images, masks = support(k, b)
    query = support(q, b, seed=1)[0] if q else None
    s_logits, q_logits = hyper.forward_episode(images, masks, query, torch.Generator().manual_seed(0))
    assert s_logits.shape == (b, k, 1, SIDE, SIDE, SIDE)
    assert (q_logits is None) if q == 0 else q_logits.shape == (b, q, 1, SIDE, SIDE, SIDE)


@pytest.mark.parametrize("kw", [{}, {"base_width": 16}, {"c_base": 4}])
def test_generated_u_net_is_plain_and_complete(kw):
    hyper = tiny(**kw).eval()
    images, masks = support(2)
    unet = hyper.generate(images, masks)
    assert type(unet) is UNet3D
    assert set(dict(unet.named_parameters())) == set(UNet3D(**hyper.unet.config).state_dict())
    hyper_ptrs = {p.data_ptr() for p in hyper.parameters()} | {b.data_ptr() for b in hyper.buffers()}
    assert not any(p.data_ptr() in hyper_ptrs for p in unet.parameters())  # owns its storage
    assert not any(isinstance(m, HyperUNet) for m in unet.modules())
    for level in range(4):  # no all-zero output channel in any generated kernel
        for j in (1, 2):
            w = unet.get_parameter(f"decoder.{level}.conv{j}.weight")
            assert bool((w.flatten(1).abs().sum(1) > 0).all())


@pytest.mark.parametrize("g, c_base", [(1, 8), (3, 8), (4, 2)])
def test_tiling_writes_every_entry_once_from_its_own_channels(g, c_base):
    c = g * c_base
    perms = channel_permutations(c, c_base, torch.Generator().manual_seed(g))
    ids = torch.arange(g * g, dtype=torch.float).view(1, g, g, 1, 1, 1).expand(1, g, g, c_base, c_base, 27)
    kernel = tile_filters(ids.contiguous(), perms)[0, :, :, 0]  # (c, c): id of the base filter per entry
    for r in range(g):
        for i in range(g):
            written = kernel == r * g + i
            rows, cols = written.nonzero(as_tuple=True)
            assert written.sum() == c_base * c_base  # c_base x c_base entries each ...
            assert set(rows.tolist()) == set(range(r * c_base, (r + 1) * c_base))  # ... in output block r
            assert set(cols.tolist()) == set(perms[r, i * c_base : (i + 1) * c_base].tolist())  # its channels
    # the (out, in) layout inside a block survives the permutation
    filt = torch.randn(1, g, g, c_base, c_base, 27)
    w = tile_filters(filt, perms)
    r, i, o, j = g - 1, 0, c_base - 1, 1
    assert torch.equal(w[0, r * c_base + o, perms[r, i * c_base + j]], filt[0, r, i, o, j])


def test_batched_path_equals_instantiated_u_nets():
    hyper = tiny().eval()
    images, masks = support(1, b=3)
    query = support(1, b=3, seed=4)[0]
    with torch.no_grad():
        logits, weights = hyper._generate_and_decode(images, masks, query, torch.Generator().manual_seed(0))
        for t in range(3):
            unet = hyper.instantiate({k: v[t] for k, v in weights.items()})
            assert torch.allclose(unet(query[t]), logits[t, 1:], atol=1e-4)
            assert torch.allclose(unet(images[t]), logits[t, :1], atol=1e-4)


def test_generate_equals_forward_episode_for_one_task(model):
    images, masks = support(2)
    unet = model.generate(images, masks, torch.Generator().manual_seed(5))
    with torch.no_grad():
        s_logits, _ = model.forward_episode(images[None], masks[None], None, torch.Generator().manual_seed(5))
        assert torch.allclose(unet(images), s_logits[0], atol=1e-4)


def test_same_seed_same_weights_and_eval_mode_is_deterministic(model):
    images, masks = support(1)

    def weights(generator=None):
        return model.generate(images, masks, generator).state_dict()

    a, b = weights(torch.Generator().manual_seed(7)), weights(torch.Generator().manual_seed(7))
    c = weights(torch.Generator().manual_seed(8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    d, e = weights(), weights()  # eval mode, no generator: seeded with eval_seed
    assert all(torch.equal(d[k], e[k]) for k in d)


def test_query_loss_reaches_every_trained_part():
    hyper = tiny().train()
    images, masks = support(1, b=2)
    query, q_masks = support(1, b=2, seed=3)
    _, q_logits = hyper.forward_episode(images, masks, query, torch.Generator().manual_seed(0))
    segmentation_loss(q_logits.flatten(0, 1), q_masks.flatten(0, 1)).backward()
    parts = {
        "encoder": hyper.unet.encoder,
        "shared decoder norms": hyper.unet.decoder,
        "up-convs": hyper.unet.up,
        "H": hyper.hyper,
        "positional codes": hyper.codes,
        "z* MLP": hyper.zstar,
        "head MLP": hyper.head_mlp,
        "task LayerNorm": hyper.task_norm,
    }
    for name, module in parts.items():
        grads = [p.grad for p in module.parameters()]
        assert grads and all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    assert hyper.kernel_scale.grad is not None and bool((hyper.kernel_scale.grad != 0).all())
    for code in hyper.codes.values():  # every base filter's positional code is used
        assert bool((code.pos.grad.abs().sum(1) > 0).all())


def test_task_descriptor_equals_upsample_then_mask_average(model):
    """Eq. 1 computed at low resolution equals the literal full-resolution formula."""
    images, masks = support(2)
    with torch.no_grad():
        f_enc = model.unet.encode(images)[-1]  # (K, C, 2, 2, 2)
        up = F.interpolate(f_enc, size=masks.shape[-3:], mode="nearest")
        literal = (up * masks).sum(dim=(0, 2, 3, 4)) / masks.sum()
        z = model.task_descriptor(f_enc[None], masks[None, :, 0])
    assert torch.allclose(z[0], model.task_norm(literal), atol=1e-5)


def test_state_dict_round_trip_and_fine_tuning_leave_hypernetwork_alone(model):
    images, masks = support(1)
    unet = model.generate(images, masks)
    buffer = io.BytesIO()
    torch.save(unet.state_dict(), buffer)
    buffer.seek(0)
    loaded = UNet3D(base_width=8)
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        assert torch.equal(loaded(images), unet(images))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unet_before = {k: v.clone() for k, v in unet.state_dict().items()}
    loss_before, loss_after = gradient_step(unet, images, masks, lr=0.05)
    assert loss_after < loss_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(not torch.equal(unet_before[k], v) for k, v in unet.state_dict().items())


def test_random_unet_and_parameter_table(model):
    rand = model.random_unet(torch.Generator().manual_seed(0))
    assert type(rand) is UNet3D
    shared = model.unet.state_dict()
    assert all(torch.equal(shared[k], v) for k, v in rand.state_dict().items() if k in shared)
    table = parameter_table(model)
    assert table["U-Net total"] == table["U-Net generated (decoder 3^3 convs + head)"] + table["U-Net shared (trained)"]
    assert table["hypernetwork trainable total"] == sum(p.numel() for p in model.parameters())


def test_profiles_and_config():
    quick = HyperUNet.from_profile("quick")
    assert quick.unet.widths[0] == 8 and len(quick.slots) == 16
    paper = parameter_table(HyperUNet.from_profile("paper"))
    assert paper["U-Net total"] == 11_101_761
    with pytest.raises(ConfigError, match="base_widht"):
        HyperUNet.from_config({"base_widht": 8})
    with pytest.raises(ValueError, match="base_width=12"):
        HyperUNet(base_width=12)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda i, m: (i, torch.zeros_like(m)), "empty"),
        (lambda i, m: (i, m[..., :16]), "shape mismatch"),
        (lambda i, m: (i, m * 2), "binary"),
        (lambda i, m: (i[0], m[0]), "5 dims"),
        (lambda i, m: (i[..., :24], m[..., :24]), "multiple of 16"),
        (lambda i, m: (torch.cat([i, i], 1), torch.cat([m, m], 1)), "1 channel"),
        (lambda i, m: (i[:0], m[:0]), r"no support \(K = 0\)"),  # an IndexError deep in the context before
        (lambda i, m: (i.masked_fill(m.bool(), float("nan")), m), r"hold \d+ non-finite value"),  # NaN weights before
        (lambda i, m: (i.double(), m), "support images dtype torch.float64 differs from the model's torch.float32"),
    ],
)
def test_bad_support_input(model, make, match):
    images, masks = make(*support(1))
    with pytest.raises(ValueError, match=match):
        model.generate(images, masks)


def test_bad_query_and_gradient_step_input(model):
    images, masks = support(1, b=1)
    with pytest.raises(ValueError, match="query images"):
        model.forward_episode(images, masks, images[:, :, :, :16])
    with pytest.raises(ValueError, match="query images dtype torch.float64 differs"):
        model.forward_episode(images, masks, images.double())
    unet = UNet3D(base_width=8)
    with pytest.raises(ValueError, match="shape mismatch"):
        gradient_step(unet, images[0], masks[0, ..., :16], lr=0.1)
    with pytest.raises(ValueError, match="binary"):
        gradient_step(unet, images[0], masks[0] * 3, lr=0.1)
    with pytest.raises(ValueError, match="lr=0"):
        gradient_step(unet, images[0], masks[0], lr=0)


def _soft_dice_and_bce(logits: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Written out: soft Dice loss per (case, channel) over D, H, W (MONAI's 1e-5 smoothing), mean BCE."""
    p, g = torch.sigmoid(logits), masks.float()
    axes = (2, 3, 4)
    dice = 1 - (2 * (p * g).sum(axes) + 1e-5) / (p.sum(axes) + g.sum(axes) + 1e-5)
    return dice.mean(), F.binary_cross_entropy_with_logits(logits, g)


def test_segmentation_loss_is_dice_plus_weighted_bce():
    """``L_seg = Dice + w · BCE``; the default ``w = 1`` (paper §4); ``w = 0`` is Dice alone; ``w < 0`` is refused."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 6, 6, 6, generator=g) * 2
    masks = (torch.rand(2, 1, 6, 6, 6, generator=g) < 0.3).float()
    d, bce = _soft_dice_and_bce(logits, masks)
    assert float(segmentation_loss(logits, masks)) == pytest.approx(float(d + bce), rel=1e-5)
    for w in (0.5, 0.0, 2.0):
        assert float(segmentation_loss(logits, masks, w)) == pytest.approx(float(d + w * bce), rel=1e-5)
    with pytest.raises(ValueError, match="bce_weight=-0.5"):
        segmentation_loss(logits, masks, -0.5)
    with pytest.raises(ValueError, match="differ in shape"):
        segmentation_loss(logits, masks[:1])


def test_gradient_step_is_one_plain_sgd_step_on_the_trainable_parameters():
    """``θ ← θ − η ∇θ L_seg`` exactly, for every trainable parameter and no frozen one; one ``(1, D, H, W)``
    case."""
    images, masks = support(1)
    unet = UNet3D(base_width=8).eval()
    frozen = unet.head.weight
    frozen.requires_grad_(False)
    params = [p for p in unet.parameters() if p.requires_grad]
    fresh = copy.deepcopy(unet)
    w, lr = 0.3, 0.1
    loss = segmentation_loss(unet(images), masks, w)
    grads = torch.autograd.grad(loss, params)
    before = [p.detach().clone() for p in params]
    frozen_before = frozen.detach().clone()
    loss_before, loss_after = gradient_step(unet, images[0], masks[0], lr=lr, bce_weight=w)
    assert loss_before == pytest.approx(float(loss.detach()), rel=1e-6)
    for p, p0, grad in zip(params, before, grads):
        torch.testing.assert_close(p.detach(), p0 - lr * grad, rtol=0, atol=1e-6)
    assert torch.equal(frozen, frozen_before)
    with torch.no_grad():
        assert loss_after == pytest.approx(float(segmentation_loss(unet(images), masks, w)), rel=1e-6)
    assert math.isnan(gradient_step(unet, images, masks, lr=lr, loss_after=False)[1])
    with torch.no_grad():
        default_before = float(segmentation_loss(fresh(images), masks, 1.0))
    assert gradient_step(fresh, images, masks, lr=lr)[0] == pytest.approx(default_before, rel=1e-6)  # w = 1
    with pytest.raises(ValueError, match=r"\(K, 1, D, H, W\) or \(1, D, H, W\)"):
        gradient_step(unet, images[0, 0], masks[0, 0], lr=lr)
