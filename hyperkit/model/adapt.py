"""Reference-based weight update: one gradient step on the support (paper §3; ablation Appendix A.1).

After generation, the U-Net takes one plain SGD step with a small learning rate
on the segmentation loss of its own support pair. Only the U-Net changes; the
hypernetwork that produced it is not involved (the U-Net holds no reference to it).
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss
from torch import Tensor, nn

from hyperkit.model.checks import check_binary_mask, check_same_shape

__all__ = ["segmentation_loss", "gradient_step"]

# Dice + binary cross-entropy on logits (MONAI uses BCEWithLogits for one channel)
_LOSS = DiceCELoss(sigmoid=True)


def segmentation_loss(logits: Tensor, masks: Tensor, bce_weight: float = 1.0) -> Tensor:
    """``L_seg = Dice + w · BCE``, averaged over the batch (paper §4: "a combined Dice and binary cross-entropy
    loss", no weight given; ``w = 1`` is the plain sum).

    Args:
        logits: ``(N, 1, D, H, W)``.
        masks: ``(N, 1, D, H, W)`` binary, same shape.
        bce_weight: ``w`` (>= 0). With a few per cent of foreground, BCE pulls every
            probability towards the background; a smaller ``w`` lets Dice lead.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: shapes that differ or are not 5-D ``(N, C, D, H, W)`` (a volume without its batch and
            channel axes would be averaged as N = D images of one channel each); ``bce_weight`` < 0 or NaN.
    """
    if logits.shape != masks.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and masks {tuple(masks.shape)} differ in shape")
    if logits.dim() != 5:
        raise ValueError(f"logits and masks must be (N, 1, D, H, W), got shape {tuple(logits.shape)}")
    if bce_weight == 1.0:
        return _LOSS(logits, masks.to(logits.dtype))
    if not bce_weight >= 0:  # NaN fails the comparison too
        raise ValueError(f"bce_weight={bce_weight} must be >= 0")
    target = masks.to(logits.dtype)
    return _LOSS.dice(logits, target) + bce_weight * _LOSS.bce(logits, target)


def gradient_step(unet: nn.Module, image: Tensor, mask: Tensor, lr: float,
                  loss_after: bool = True, bce_weight: float = 1.0) -> tuple[float, float]:
    """One SGD step of ``unet`` on its support: ``θ ← θ − lr · ∇θ L_seg(unet(image), mask)``.

    Every trainable parameter of ``unet`` is updated (it owns them all); nothing
    else is, and the parameters' ``.grad`` fields are left untouched.

    Args:
        unet: a generated :class:`~hyperkit.model.unet.UNet3D` (or any 1-logit segmenter).
        image: ``(K, 1, D, H, W)`` support images (or ``(1, D, H, W)`` for one case).
        mask: binary masks of the same shape.
        lr: learning rate η > 0 (profile: ``evaluate.adapt_lr``).
        loss_after: also compute the support loss after the step (one more forward pass
            without gradients); when False it is returned as NaN.
        bce_weight: ``w`` of ``L_seg = Dice + w BCE`` (:func:`segmentation_loss`); the protocol
            passes ``evaluate.adapt_bce_weight`` (the paper's ``w = 1``; ``null`` there means the
            training loss's ``train.bce_weight``).

    Returns:
        ``(loss_before, loss_after)`` on the support.

    Raises:
        ValueError: a bad shape, no support (K = 0), a mask that is not binary, a non-finite image
            value, or ``lr`` not a finite number > 0 (an infinite step leaves NaN weights).

    Examples:
        >>> before, after = gradient_step(unet, image, mask, lr=0.1)
    """
    if image.dim() == 4:
        image, mask = image[None], mask[None]
    if image.dim() != 5:
        raise ValueError(f"image must be (K, 1, D, H, W) or (1, D, H, W), got shape {tuple(image.shape)}")
    check_same_shape(image, mask, "gradient_step")
    if not len(image):
        raise ValueError(f"gradient_step needs at least one support, got shape {tuple(image.shape)}")
    check_binary_mask(mask, "gradient_step")
    if not bool(torch.isfinite(image).all()):
        raise ValueError(f"gradient_step: the support image holds {int((~torch.isfinite(image)).sum())} non-finite "
                         "value(s) (NaN or inf)")
    if not 0 < lr < float("inf"):  # NaN fails the comparison too
        raise ValueError(f"lr={lr} must be a finite number > 0")
    params = [p for p in unet.parameters() if p.requires_grad]
    with torch.enable_grad():
        loss = segmentation_loss(unet(image), mask, bce_weight)
        grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(lr * g)
        after = segmentation_loss(unet(image), mask, bce_weight).item() if loss_after else float("nan")
    return loss.item(), after
