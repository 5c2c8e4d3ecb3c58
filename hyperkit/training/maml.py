"""MAML meta-training of the target U-Net: the baseline of the paper's Table 3 (docs/design.md §6).

Alsaleh et al. (2024) meta-train a 3D U-Net with MAML (Finn et al., 2017) on three of spleen,
liver, right and left kidney and adapt it to the fourth from five labelled scans. Here the
network is the kit's :class:`~hyperkit.model.unet.UNet3D` — the architecture the hypernetwork
writes — with every weight an ordinary parameter. With ``θ`` its weights, one meta-iteration:

1. draw ``meta_batch`` tasks of the training organs; per task ``shots`` support cases and
   ``queries`` other query cases (:func:`sample_meta_batch`), each patch augmented independently;
2. **inner loop** (:func:`inner_adapt`): ``k = inner_steps`` full-batch SGD steps on the supports,
   ``θ'_{i+1} = θ'_i − α ∇ L_seg(f_{θ'_i}(x_s), y_s)``, ``θ'_0 = θ``;
3. **outer step**: Adam (lr ``meta_lr``) on the mean query loss ``L_seg(f_{θ'_k}(x_q), y_q)`` over
   the tasks. **First-order** MAML (``first_order: true``, the profiles' choice) treats the inner
   gradients as constants, so ``∇_θ`` of the query loss is its gradient at ``θ'_k``;
   second-order differentiates through the inner loop (``create_graph``), at about twice the
   cost per inner step.

``L_seg = Dice + w BCE`` is the kit's loss (:func:`~hyperkit.model.adapt.segmentation_loss`).
Meta-test (:func:`adapt`) runs the same inner loop — same ``k``, ``α`` and loss — on the supports
of the held-out organ, without augmentation, and returns a standalone U-Net.

Every random choice of iteration ``i`` of a fold comes from ``torch_generator(seed,
"maml_batch", fold, i)``, the initial weights from ``derive(seed, "maml_init", fold)``
(:mod:`hyperkit.seeds`). A finished fold is one file (:func:`save_fold`, atomic; read with
``torch.load(weights_only=True)`` by :func:`load_fold`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor
from torch.func import functional_call
from tqdm.auto import tqdm

from hyperkit.config.sections import DataConfig, MamlConfig, reread_config
from hyperkit.data.augment import augment_pair, build_augment
from hyperkit.data.bank import TaskBank
from hyperkit.data.identity import comparable_on_data
from hyperkit.errors import HyperkitError
from hyperkit.files import read_torch_file, save_atomic
from hyperkit.model.adapt import segmentation_loss
from hyperkit.model.unet import UNet3D
from hyperkit.seeds import derive, torch_generator
from hyperkit.stopping import stop_point

__all__ = ["FOLD_KIND", "FOLD_READERS", "MetaTask", "MetaResult", "sample_meta_batch", "inner_adapt", "adapt",
           "meta_train", "init_unet", "without_task", "save_fold", "load_fold"]

#: ``kind`` of a fold file
FOLD_KIND = "hyperkit-maml-fold"
#: today's readers of the sections of a fold's key: a setting added since the fold compares at its default
FOLD_READERS = {"data": DataConfig.from_mapping, "maml": MamlConfig.from_mapping}

Params = dict[str, Tensor]


@dataclass
class MetaTask:
    """One task of a meta-batch.

    Attributes:
        task: its task id.
        support_images, support_masks: ``(K, 1, S, S, S)``, K = ``shots``.
        query_images, query_masks: ``(Q, 1, S, S, S)``, other cases of the same task.
    """

    task: str
    support_images: Tensor
    support_masks: Tensor
    query_images: Tensor
    query_masks: Tensor


@dataclass
class MetaResult:
    """What :func:`meta_train` did.

    Attributes:
        iterations: outer steps run.
        seconds: wall time of meta-training.
        curve: per iteration ``{"iteration", "tasks", "support", "query"}``: the batch's task ids, the
            support loss at ``θ`` (before the inner loop) and the query loss at ``θ'_k`` (after it),
            each averaged over the batch's tasks.
        tasks_seen: every task id that entered a meta-batch, sorted.
        threads: torch threads it computed at (0: not recorded, a fold saved before they were).
    """

    iterations: int
    seconds: float
    curve: list[dict[str, Any]] = field(default_factory=list)
    tasks_seen: list[str] = field(default_factory=list)
    threads: int = 0


def init_unet(base_width: int, seed: int, fold: str) -> UNet3D:
    """The U-Net a fold starts from: ``UNet3D(base_width)`` initialised from ``(seed, "maml_init", fold)``."""
    torch.manual_seed(derive(seed, "maml_init", fold))
    return UNet3D(base_width)


def without_task(bank: TaskBank, held_out: str) -> TaskBank:
    """``bank`` without the task ``held_out``: the only data a fold's meta-training can reach.

    Raises:
        ValueError: ``held_out`` is not in ``bank``, or nothing would be left.
    """
    if held_out not in bank.images:
        raise ValueError(f"held-out task {held_out!r} is not in the bank ({bank.task_ids})")
    keep = [t for t in bank.task_ids if t != held_out]
    if not keep:
        raise ValueError(f"no task left to meta-train on once {held_out!r} is held out")
    return TaskBank({t: bank.images[t] for t in keep}, {t: bank.masks[t] for t in keep},
                    {t: list(bank.case_ids[t]) for t in keep}, bank.spacing)


def sample_meta_batch(bank: TaskBank, cfg: MamlConfig, generator: torch.Generator,
                      augment: Any | None = None) -> list[MetaTask]:
    """``cfg.meta_batch`` tasks of ``bank`` (without replacement while there are enough), each with
    ``cfg.shots`` supports and ``min(cfg.queries, N - shots)`` other query cases.

    Args:
        bank: the fold's training tasks (patches ``(N, 1, S, S, S)`` per task).
        cfg: shots, queries, meta-batch.
        generator: every random choice (tasks, cases, augmentation seeds).
        augment: :func:`~hyperkit.data.augment.build_augment`'s transform, applied to every patch
            independently; ``None``: the patches as they are.

    Raises:
        ValueError: a task with fewer than ``shots + 1`` cases.
    """
    ids = bank.task_ids
    if cfg.meta_batch <= len(ids):
        order = torch.randperm(len(ids), generator=generator)[:cfg.meta_batch].tolist()
    else:
        order = torch.randint(len(ids), (cfg.meta_batch,), generator=generator).tolist()
    out = []
    for i in order:
        task = ids[i]
        images, masks = bank.images[task], bank.masks[task]
        n = images.shape[0]
        if n < cfg.shots + 1:
            raise ValueError(f"{task}: {n} case(s), meta-training needs {cfg.shots} supports and a query")
        cases = torch.randperm(n, generator=generator).tolist()
        sup, qry = cases[:cfg.shots], cases[cfg.shots:cfg.shots + min(cfg.queries, n - cfg.shots)]
        parts = []
        for idx in (sup, qry):
            x, y = images[idx].clone(), masks[idx].clone()
            if augment is not None:
                for j, s in enumerate(torch.randint(2 ** 31, (len(idx),), generator=generator).tolist()):
                    x[j], y[j] = augment_pair(augment, x[j], y[j], s)
            parts += [x, y]
        out.append(MetaTask(task, *parts))
    return out


def inner_adapt(net: UNet3D, params: Mapping[str, Tensor], images: Tensor, masks: Tensor, steps: int, lr: float,
                bce_weight: float = 1.0, create_graph: bool = False) -> tuple[Params, list[float]]:
    """The inner loop: ``steps`` full-batch SGD steps of ``net``'s function at ``params`` on the supports.

    ``net`` itself is not changed: its forward pass runs with ``params`` (``torch.func.functional_call``).

    Args:
        net: the U-Net whose forward pass is used.
        params: ``name -> tensor`` for every parameter of ``net`` (its own parameters, for a meta-gradient).
        images, masks: supports ``(K, 1, S, S, S)``.
        steps: k.
        lr: alpha.
        bce_weight: ``w`` of ``L_seg``.
        create_graph: keep the graph of the inner gradients (second-order MAML); ``False``: the
            gradients are constants, and the returned tensors still depend on ``params``
            through ``θ'_k = θ − α Σ g_i`` (first-order MAML).

    Returns:
        ``(θ'_k, losses)``: the adapted parameters, and the support loss before each step
        (``steps`` values: ``losses[0]`` is the loss at ``params``).
    """
    fast = dict(params)
    losses = []
    with torch.enable_grad():
        for _ in range(steps):
            loss = segmentation_loss(functional_call(net, fast, (images,)), masks, bce_weight)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
            fast = {n: p - lr * g for (n, p), g in zip(fast.items(), grads)}
            losses.append(float(loss.detach()))
    return fast, losses


def adapt(net: UNet3D, images: Tensor, masks: Tensor, cfg: MamlConfig) -> tuple[UNet3D, list[float]]:
    """Meta-test: a copy of ``net`` adapted with the inner loop on supports ``(K, 1, S, S, S)``.

    Returns:
        ``(unet, losses)``: a standalone U-Net in eval mode, and the support loss before each of
        the ``k`` steps and after the last (``k + 1`` values).
    """
    params = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    fast, losses = inner_adapt(net, params, images, masks, cfg.inner_steps, cfg.inner_lr, cfg.bce_weight)
    out = copy.deepcopy(net)
    out.load_state_dict({n: v.detach() for n, v in fast.items()})
    with torch.no_grad():
        losses.append(float(segmentation_loss(out(images), masks, cfg.bce_weight)))
    return out.eval(), losses


def meta_train(net: UNet3D, bank: TaskBank, cfg: MamlConfig, seed: int, fold: str, *, progress: bool = False,
               desc: str = "MAML") -> MetaResult:
    """Meta-train ``net`` in place on every task of ``bank`` (module docstring, steps 1-3).

    Args:
        net: the U-Net (:func:`init_unet`); its weights become the meta-learnt ``θ``.
        bank: the fold's training tasks only (:func:`without_task`): meta-training reads nothing else.
        cfg: the MAML budget.
        seed, fold: the random stream of iteration ``i`` is ``(seed, "maml_batch", fold, i)``.
        progress: a tqdm bar with the query loss.
        desc: the bar's label.

    Returns:
        A :class:`MetaResult`; ``net`` holds the meta-learnt weights.
    """
    torch.set_flush_denormal(True)  # denormal floats slow CPU convolutions by orders of magnitude
    augment = build_augment() if cfg.augment else None
    opt = torch.optim.Adam(net.parameters(), lr=cfg.meta_lr)
    result = MetaResult(0, 0.0, threads=torch.get_num_threads())
    seen: set[str] = set()
    start = time.perf_counter()
    net.train()
    bar = tqdm(range(cfg.meta_iterations), desc=desc, disable=not progress, leave=False)
    for it in bar:
        stop_point()  # in a pool the caller has left (an interrupt): end here
        batch = sample_meta_batch(bank, cfg, torch_generator(seed, "maml_batch", fold, it), augment)
        opt.zero_grad(set_to_none=True)
        params = dict(net.named_parameters())
        support, query = [], []
        for t in batch:
            fast, losses = inner_adapt(net, params, t.support_images, t.support_masks, cfg.inner_steps,
                                       cfg.inner_lr, cfg.bce_weight, create_graph=not cfg.first_order)
            q = segmentation_loss(functional_call(net, fast, (t.query_images,)), t.query_masks, cfg.bce_weight)
            (q / len(batch)).backward()
            support.append(losses[0])
            query.append(float(q.detach()))
        opt.step()
        seen.update(t.task for t in batch)
        row = {"iteration": it, "tasks": [t.task for t in batch], "support": _mean(support), "query": _mean(query)}
        result.curve.append(row)
        bar.set_postfix(query=f"{row['query']:.3f}")
        result.iterations = it + 1
    bar.close()
    result.seconds = round(time.perf_counter() - start, 2)
    result.tasks_seen = sorted(seen)
    net.eval()
    return result


def _mean(xs: Sequence[float]) -> float:
    return round(sum(xs) / len(xs), 6)


def save_fold(path: str | Path, net: UNet3D, key: Mapping[str, Any], result: MetaResult) -> Path:
    """Write a finished fold atomically: the meta-learnt weights, what made them (``key``) and the run's facts."""
    return save_atomic({"kind": FOLD_KIND, "key": dict(key), "state_dict": net.state_dict(),
                        "base_width": net.config["base_width"],
                        "result": asdict(result)}, path)


def load_fold(path: str | Path, key: Mapping[str, Any] | None = None) -> tuple[UNet3D, MetaResult]:
    """A finished fold (``torch.load(weights_only=True)``): its U-Net (eval mode) and :class:`MetaResult`.

    Args:
        path: the fold file.
        key: when given, the fold's recorded key must equal it (same organs, budget, seed, data).

    Raises:
        FileNotFoundError: no file.
        HyperkitError: not a fold file, or one made with another key.
    """
    ck = read_torch_file(path, "MAML fold")
    if not isinstance(ck, dict) or ck.get("kind") != FOLD_KIND:
        raise HyperkitError(f"{path}: not a MAML fold file")
    theirs, ours = (comparable_on_data(reread_config(ck["key"], FOLD_READERS), reread_config(key, FOLD_READERS),
                                       "data_root") if key is not None else ({}, {}))
    if theirs != ours:  # the data by content where the fold records it
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise HyperkitError(f"{path}: a fold made with another {', '.join(diff)}; remove it or choose another --out")
    net = UNet3D(int(ck["base_width"]))
    net.load_state_dict(ck["state_dict"])
    r = ck["result"]
    return net.eval(), MetaResult(int(r["iterations"]), float(r["seconds"]), list(r["curve"]), list(r["tasks_seen"]),
                                  int(r.get("threads", 0)))
