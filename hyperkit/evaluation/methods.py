"""The methods of the protocol, one small object each, registered in one place (:data:`REGISTRY`).

Two kinds, one interface each:

- a **one-shot** method (:class:`OneShotMethod`) fits a predictor to one support draw:
  ``fit(ctx, task, draw, images, masks) -> predictor``, where ``predictor(images)`` gives
  binary predictions ``(N, 1, S, S, S)``; the protocol scores it on the draw's query cases;
- a **supervised** method (:class:`SupervisedMethod`) trains on the train/validation split of
  the targets: ``trainings(ctx, targets) -> list of Training`` (the U-Nets to train and what
  each gives); :func:`fit_supervised` trains those of every supervised method side by side and
  yields a :class:`Fitted` predictor per target (``fit(ctx, targets)`` does it for one method);
  the protocol scores each on the target's test cases.

A new method (an ablation variant, K-shot, fine-tuning, MAML) is a subclass registered with
:func:`register`; :func:`~hyperkit.evaluation.protocol.evaluate` runs it like the built-in ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from hyperkit.config import EvalConfig
from hyperkit.data.bank import TaskBank
from hyperkit.data.tasks import task_parts
from hyperkit.evaluation.baselines import (Samples, SupervisedJob, SupervisedResult, copy_support, predict,
                                          train_supervised_many)
from hyperkit.model.adapt import gradient_step
from hyperkit.model.unet import UNet3D
from hyperkit.seeds import derive, torch_generator

if TYPE_CHECKING:
    from hyperkit.evaluation.protocol import CaseSplit
    from hyperkit.model.hypernet import HyperUNet

__all__ = ["Context", "Fitted", "Method", "OneShotMethod", "SupervisedMethod", "Training", "fit_supervised",
           "HyperUNetMethod", "RandUNetMethod", "CopySupportMethod", "ConvUNetMethod", "AllUNetMethod", "REGISTRY",
           "register", "methods_for", "one_shot_model"]

#: ``predictor(images (N, 1, S, S, S)) -> binary predictions (N, 1, S, S, S)``
Predictor = Callable[[Tensor], Tensor]


@dataclass
class Context:
    """What a method may use, fixed for one evaluation.

    Attributes:
        hyper: the trained hypernetwork (``None`` when no method needs one).
        bank: the held-out tasks' patches.
        cfg: the protocol.
        seed: the evaluation's seed (every random choice of a method derives from it).
        train_bank: the training tasks (``None`` unless a method needs them).
        width: U-Net width of the supervised baselines.
        splits: the targets' train / validation / test splits (tasks too small have none).
        progress: tqdm bars.
        save_model: called as ``save_model(method, task, unet)`` with each trained per-task U-Net.
        info: training facts per method, filled by the supervised methods.
    """

    hyper: "HyperUNet | None"
    bank: TaskBank
    cfg: EvalConfig
    seed: int
    train_bank: TaskBank | None
    width: int | None
    splits: Mapping[str, "CaseSplit"]
    progress: bool = False
    save_model: Callable[[str, str, UNet3D], None] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def samples(self, bank: TaskBank, task: str, idx: Sequence[int], channel: int) -> Samples:
        """The cases ``idx`` of ``task`` in ``bank``, labelled as output ``channel``."""
        return Samples(bank.images[task][list(idx)], bank.masks[task][list(idx)],
                       torch.full((len(idx),), channel, dtype=torch.long))


@dataclass(frozen=True)
class Fitted:
    """A supervised method's model for one target: its predictor and seconds to its best validation."""

    task: str
    predict: Predictor
    seconds: float


class Method:
    """One method of the protocol.

    Attributes:
        name: its key in results and tables (``hyper_unet``).
        one_shot: fits to support draws (else trains on the targets' train splits).
        needs_hyper: needs the trained hypernetwork.
        needs_width: needs the U-Net width of the supervised baselines.
        needs_train_bank: needs the training tasks.
    """

    name: ClassVar[str]
    one_shot: ClassVar[bool]
    needs_hyper: ClassVar[bool] = False
    needs_width: ClassVar[bool] = False
    needs_train_bank: ClassVar[bool] = False


class OneShotMethod(Method):
    """A method that segments from the supports of one draw alone: :meth:`fit` takes them and returns a
    predictor, ``(N, 1, S, S, S)`` query images -> ``(N, 1, S, S, S)`` boolean masks."""

    one_shot = True

    def fit(self, ctx: Context, task: str, draw: int, images: Tensor, masks: Tensor) -> Predictor:
        """A predictor from the supports ``images``, ``masks`` ``(K, 1, S, S, S)`` of draw ``draw``."""
        raise NotImplementedError


@dataclass(frozen=True)
class Training:
    """One training a supervised method needs for its targets, and what its result gives.

    Attributes:
        method: the method's name.
        job: the U-Net, its data, budget and generator.
        finish: called with the training's result; records its facts in ``ctx.info`` (and saves
            the model) and returns the targets' :class:`Fitted` models.
    """

    method: str
    job: SupervisedJob
    finish: Callable[[SupervisedResult], list[Fitted]]


class SupervisedMethod(Method):
    one_shot = False
    needs_width = True

    def trainings(self, ctx: Context, targets: Sequence[str]) -> list[Training]:
        """The trainings that make a model per target of ``targets`` (all have a split)."""
        raise NotImplementedError

    def fit(self, ctx: Context, targets: Sequence[str]) -> Iterator[Fitted]:
        """A model per target of ``targets`` (all have a split), yielded as each is ready."""
        for _, fitted in fit_supervised(ctx, [(self, targets)]):
            yield fitted


def fit_supervised(ctx: Context, todo: Sequence[tuple[SupervisedMethod, Sequence[str]]]
                   ) -> Iterator[tuple[str, Fitted]]:
    """Every training of every supervised method in ``todo`` (``(method, targets)``) side by side.

    The trainings are independent (each U-Net its own seed, data and generator), so they run in
    one pool, one per torch thread (:func:`~hyperkit.evaluation.baselines.train_supervised_many`),
    the largest step budget first (the All U-Net, then the Conv U-Nets); each computes what it
    computes alone at one thread.

    Yields:
        ``(method name, Fitted)`` as each training finishes.
    """
    trainings = [t for method, targets in todo for t in method.trainings(ctx, targets)]
    order = sorted(range(len(trainings)), key=lambda i: -trainings[i].job.cfg.steps)  # stable: ties keep their order
    for k, res in train_supervised_many([trainings[i].job for i in order], progress=ctx.progress):
        done = trainings[order[k]]
        for fitted in done.finish(res):
            yield done.method, fitted


def one_shot_model(method: str, hyper: "HyperUNet", images: Tensor, masks: Tensor, cfg: EvalConfig,
                   generator: torch.Generator | None) -> UNet3D:
    """The U-Net of one draw: generated (``hyper_unet``) or with a random decoder (``rand_unet``).

    The gradient step on the support (A.1) follows :meth:`EvalConfig.step_lr`: the Hyper
    U-Net takes it when ``cfg.adapt``; the Rand U-Net only when ``cfg.rand_adapt`` too (the
    paper's Rand U-Net is random decoder weights, not adapted).

    Args:
        method: ``hyper_unet`` or ``rand_unet``.
        hyper: the trained hypernetwork (its shared parts also serve the Rand U-Net).
        images, masks: ``(K, 1, S, S, S)`` supports.
        cfg: the protocol.
        generator: the random decoder's weights (required by ``rand_unet``, unused otherwise).

    Raises:
        ValueError: another method, or ``rand_unet`` without a generator.
    """
    if method == "hyper_unet":
        unet = hyper.generate(images, masks)
    elif method == "rand_unet":
        if generator is None:
            raise ValueError("one_shot_model: rand_unet needs a generator for its random decoder")
        unet = hyper.random_unet(generator)
    else:
        raise ValueError(f"one_shot_model: method must be hyper_unet or rand_unet, got {method!r}")
    lr = cfg.step_lr(method)
    if lr is not None:
        gradient_step(unet, images, masks, lr=lr, loss_after=False, bce_weight=cfg.step_bce_weight)
    return unet.eval()


class _GeneratedUNet(OneShotMethod):
    """A U-Net made from the hypernetwork for each draw (:func:`one_shot_model`)."""

    needs_hyper = True

    def fit(self, ctx: Context, task: str, draw: int, images: Tensor, masks: Tensor) -> Predictor:
        unet = one_shot_model(self.name, ctx.hyper, images, masks, ctx.cfg,  # type: ignore[arg-type]
                              torch_generator(ctx.seed, "draw", task, draw))
        return lambda query: predict(unet, query)


class HyperUNetMethod(_GeneratedUNet):
    """The Hyper U-Net: a decoder generated from the support (and the gradient step when ``adapt``)."""

    name = "hyper_unet"


class RandUNetMethod(_GeneratedUNet):
    """The Rand U-Net: the hypernetwork's shared parts with a random decoder (seeded per draw)."""

    name = "rand_unet"


class CopySupportMethod(OneShotMethod):
    """Copy the support mask: the image-blind reference of the centre prior."""

    name = "copy_support"

    def fit(self, ctx: Context, task: str, draw: int, images: Tensor, masks: Tensor) -> Predictor:
        """The supports' majority vote (:func:`copy_support` of ``masks`` ``(K, 1, S, S, S)``) for every query:
        ``(N, 1, S, S, S)`` images -> the ``(1, S, S, S)`` vote repeated N times (the images are not read)."""
        mask = copy_support(masks)
        return lambda query: mask[None].expand(len(query), -1, -1, -1, -1)


def _facts(res: SupervisedResult) -> dict[str, Any]:
    return {"best_val_dice": round(res.best_dice, 4), "best_step": res.best_step, "steps": res.steps,
            "seconds_to_best": round(res.seconds_to_best, 2), "seconds": round(res.seconds, 2),
            "stopped_early": res.stopped_early, "threads": res.threads, "precision": res.precision,
            "curve": [[s, round(d, 4)] for s, d in res.curve]}


def _channel_predictor(net: UNet3D, channel: int) -> Predictor:
    return lambda images: predict(net, images, torch.full((len(images),), channel, dtype=torch.long))


class ConvUNetMethod(SupervisedMethod):
    """The Conv U-Net: one U-Net per target, from scratch, on its train cases (early stopping on val)."""

    name = "conv_unet"

    def trainings(self, ctx: Context, targets: Sequence[str]) -> list[Training]:
        facts = ctx.info.setdefault(self.name, {})
        out = []
        for task in targets:  # every initialisation from its own seed, in the calling thread
            torch.manual_seed(derive(ctx.seed, "conv_unet", task))
            net = UNet3D(ctx.width)  # type: ignore[arg-type]
            sp = ctx.splits[task]
            job = SupervisedJob(net, ctx.samples(ctx.bank, task, sp.train, 0), ctx.samples(ctx.bank, task, sp.val, 0),
                                ctx.cfg.conv, torch_generator(ctx.seed, "conv_unet", task), desc=task_parts(task).short)

            def finish(res: SupervisedResult, task: str = task, net: UNet3D = net) -> list[Fitted]:
                facts[task] = _facts(res)
                if ctx.save_model is not None:
                    ctx.save_model(self.name, task, net)
                return [Fitted(task, _channel_predictor(net, 0), res.seconds_to_best)]
            out.append(Training(self.name, job, finish))
        return out


class AllUNetMethod(SupervisedMethod):
    """The All U-Net: one network, an output per task, on every training task plus the targets' train cases.

    It is trained on all targets of the bank (so its results do not depend on which of them are
    still to do) and yields a model for each of ``targets``.
    """

    name = "all_unet"
    needs_train_bank = True

    def trainings(self, ctx: Context, targets: Sequence[str]) -> list[Training]:
        train_bank, bank = ctx.train_bank, ctx.bank
        assert train_bank is not None
        every = [t for t in bank.task_ids if t in ctx.splits]
        names = list(train_bank.task_ids) + [t for t in every if t not in train_bank.images]
        channel = {t: i for i, t in enumerate(names)}
        train = Samples.cat([ctx.samples(train_bank, t, range(len(train_bank.case_ids[t])), channel[t])
                             for t in train_bank.task_ids]
                            + [ctx.samples(bank, t, ctx.splits[t].train, channel[t]) for t in every])
        val = Samples.cat([ctx.samples(bank, t, ctx.splits[t].val, channel[t]) for t in every])
        torch.manual_seed(derive(ctx.seed, "all_unet"))
        net = UNet3D(ctx.width, out_channels=len(names))  # type: ignore[arg-type]
        job = SupervisedJob(net, train, val, ctx.cfg.all, torch_generator(ctx.seed, "all_unet"), desc="All U-Net",
                            balance=True)

        def finish(res: SupervisedResult) -> list[Fitted]:
            ctx.info[self.name] = {"tasks": len(channel), **_facts(res)}
            return [Fitted(t, _channel_predictor(net, channel[t]), res.seconds_to_best) for t in targets]
        return [Training(self.name, job, finish)]


#: every method by name, in the order an evaluation runs them (one-shot methods first)
REGISTRY: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`REGISTRY` (a new name only; it runs after those registered before it)."""
    if method.name in REGISTRY:
        raise ValueError(f"a method named {method.name!r} is registered already")
    REGISTRY[method.name] = method
    return method


for _m in (HyperUNetMethod(), RandUNetMethod(), CopySupportMethod(), ConvUNetMethod(), AllUNetMethod()):
    register(_m)


def methods_for(names: Sequence[str]) -> list[Method]:
    """The registered methods named in ``names``, in registry (run) order.

    Raises:
        ValueError: no name, or a name that is not registered.
    """
    bad = sorted(set(names) - set(REGISTRY))
    if bad or not names:
        raise ValueError(f"unknown method(s) {bad or list(names)}; choose from {list(REGISTRY)}")
    return [m for n, m in REGISTRY.items() if n in names]
