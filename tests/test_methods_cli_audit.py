"""Audit of the method registry and the ``ablate``, ``finetune``, ``maml`` commands (mutation testing found these
gaps).

``hyperkit.evaluation.methods``: the seeds and generators of every method (per draw, per target), the
gradient step's arguments, the supervised trainings' data, budgets, channels and facts, the order
:func:`fit_supervised` starts them in and how it matches results to trainings, the registry's run
order and its refusals. No network is trained: the trainings are inspected, and the pool
(``train_supervised_many``), ``predict`` and ``gradient_step`` are replaced by recorders.

``hyperkit ablate``, ``finetune``, ``maml`` (``hyperkit.cli.main``): every flag and default reaches
``run_ablation``, ``run_finetune``, ``run_maml`` (replaced by recorders), bad counts exit 2 with one
line, and the printed lines say what they claim.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

import pytest
import torch

import hyperkit.evaluation.methods as methods
from hyperkit.cli import main
from hyperkit.config import METHODS
from hyperkit.evaluation.baselines import SupervisedJob, SupervisedResult
from hyperkit.evaluation.methods import (REGISTRY, AllUNetMethod, ConvUNetMethod, Context, CopySupportMethod,
                                         RandUNetMethod, fit_supervised, methods_for, one_shot_model)
from hyperkit.evaluation.protocol import CaseSplit
from hyperkit.model.unet import UNet3D
from hyperkit.seeds import derive, torch_generator
from test_evaluation import LIVER, _bank, _cfg
from test_config_cli_audit import Recorder

SPLEEN = "msd/Task09_Spleen/spleen@CT"
TRAIN_TASK = "msd/Task07_Pancreas/pancreas@CT"
SEED = 7


def _same_stream(a: torch.Generator, b: torch.Generator) -> bool:
    return torch.equal(a.get_state(), b.get_state())


def _ctx(**kw: Any) -> Context:
    """Two targets of 5 cases, one training task of 3, budgets conv 3 steps and all 5 steps."""
    bank = _bank([LIVER, SPLEEN], n_cases=5, size=8)
    splits = {LIVER: CaseSplit([0, 1], [2], [3, 4]), SPLEEN: CaseSplit([4, 3], [1], [0, 2])}
    args: dict[str, Any] = dict(hyper=None, bank=bank, cfg=_cfg(conv={"steps": 3}, all={"steps": 5}), seed=SEED,
                                train_bank=_bank([TRAIN_TASK], n_cases=3, size=8), width=8, splits=splits)
    args.update(kw)
    return Context(**args)


def _result(seconds_to_best: float) -> SupervisedResult:
    return SupervisedResult(best_dice=0.123456, best_step=2, steps=3, seconds_to_best=seconds_to_best,
                            seconds=9.876, stopped_early=True, curve=[(0, 0.11111), (2, 0.123456)], threads=1)


# --- one-shot methods -------------------------------------------------------------------------------

def test_context_samples_carry_the_channel() -> None:
    ctx = _ctx()
    s = ctx.samples(ctx.bank, SPLEEN, [3, 1], 2)
    assert s.channels.tolist() == [2, 2]
    assert torch.equal(s.images, ctx.bank.images[SPLEEN][[3, 1]])


def test_each_draw_has_its_own_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(lambda *a: UNet3D(8))
    monkeypatch.setattr(methods, "one_shot_model", rec)
    ctx = _ctx(hyper="HYPER")
    images, masks = ctx.bank.images[LIVER][:1], ctx.bank.masks[LIVER][:1]
    RandUNetMethod().fit(ctx, LIVER, 3, images, masks)
    RandUNetMethod().fit(ctx, LIVER, 4, images, masks)
    (name, hyper, im, _, cfg, g3), _ = rec.calls[0]
    assert name == "rand_unet" and hyper == "HYPER" and im is images and cfg is ctx.cfg
    assert _same_stream(g3, torch_generator(SEED, "draw", LIVER, 3))
    assert _same_stream(rec.calls[1][0][5], torch_generator(SEED, "draw", LIVER, 4))


class _FakeHyper:
    def __init__(self) -> None:
        self.generators: list[torch.Generator] = []

    def generate(self, images: torch.Tensor, masks: torch.Tensor) -> UNet3D:
        return UNet3D(8).train()

    def random_unet(self, generator: torch.Generator) -> UNet3D:
        self.generators.append(generator)
        return UNet3D(8).train()


def test_one_shot_model_steps_with_the_protocols_lr_and_loss_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    step = Recorder(None)
    monkeypatch.setattr(methods, "gradient_step", step)
    cfg = _cfg(adapt_lr=0.1, adapt_bce_weight=0.25)
    images = torch.zeros(1, 1, 8, 8, 8)
    unet = one_shot_model("hyper_unet", _FakeHyper(), images, images, cfg, None)  # type: ignore[arg-type]
    assert not unet.training  # returned in eval mode
    (net, im, _), kw = step.calls[0]
    assert net is unet and im is images
    assert kw == {"lr": 0.1, "loss_after": False, "bce_weight": 0.25}
    hyper, g = _FakeHyper(), torch.Generator()
    assert not one_shot_model("rand_unet", hyper, images, images, cfg, g).training  # type: ignore[arg-type]
    assert hyper.generators == [g] and len(step.calls) == 1  # no step without rand_adapt


def test_copy_support_predicts_one_mask_per_query() -> None:
    masks = torch.zeros(2, 1, 8, 8, 8)
    masks[:, :, 2:5, 2:5, 2:5] = 1
    pred = CopySupportMethod().fit(_ctx(), LIVER, 0, masks, masks)(torch.zeros(3, 1, 8, 8, 8))
    assert pred.shape == (3, 1, 8, 8, 8) and bool((pred == masks[:1]).all())


# --- supervised methods ---------------------------------------------------------------------------

def _init(seed: int, width: int, **kw: Any) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return UNet3D(width, **kw).state_dict()


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_conv_unet_trainings_seed_data_and_budget_per_target() -> None:
    saved: list[tuple[str, str, UNet3D]] = []
    ctx = _ctx(save_model=lambda m, t, n: saved.append((m, t, n)))
    tr = ConvUNetMethod().trainings(ctx, [LIVER, SPLEEN])
    assert [t.method for t in tr] == ["conv_unet", "conv_unet"]
    for t, task in zip(tr, [LIVER, SPLEEN]):
        job = t.job
        assert _same_weights(job.net.state_dict(), _init(derive(SEED, "conv_unet", task), 8))
        assert _same_stream(job.generator, torch_generator(SEED, "conv_unet", task))
        assert job.cfg == ctx.cfg.conv and not job.balance
        sp = ctx.splits[task]
        assert torch.equal(job.train.images, ctx.bank.images[task][sp.train])
        assert torch.equal(job.val.images, ctx.bank.images[task][sp.val])
        assert job.train.channels.tolist() == [0] * len(sp.train) and job.val.channels.tolist() == [0]
    fitted = tr[1].finish(_result(4.5))
    assert [(f.task, f.seconds) for f in fitted] == [(SPLEEN, 4.5)]
    assert saved == [("conv_unet", SPLEEN, tr[1].job.net)]
    assert ctx.info["conv_unet"][SPLEEN] == {
        "best_val_dice": 0.1235, "best_step": 2, "steps": 3, "seconds_to_best": 4.5, "seconds": 9.88,
        "stopped_early": True, "threads": 1, "precision": "fp32", "curve": [[0, 0.1111], [2, 0.1235]]}


def test_all_unet_trains_on_every_target_with_a_channel_each(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx()
    (t,) = AllUNetMethod().trainings(ctx, [SPLEEN])  # one target asked, both trained on
    job = t.job
    names = [TRAIN_TASK, LIVER, SPLEEN]
    assert _same_weights(job.net.state_dict(), _init(derive(SEED, "all_unet"), 8, out_channels=3))
    assert _same_stream(job.generator, torch_generator(SEED, "all_unet"))
    assert job.cfg == ctx.cfg.all and job.balance
    assert job.train.channels.tolist() == [0, 0, 0, 1, 1, 2, 2]  # every training case, then the train splits
    assert torch.equal(job.train.images[3:], torch.cat([ctx.bank.images[LIVER][[0, 1]],
                                                        ctx.bank.images[SPLEEN][[4, 3]]]))
    assert job.val.channels.tolist() == [1, 2]
    assert torch.equal(job.val.images, torch.cat([ctx.bank.images[LIVER][[2]], ctx.bank.images[SPLEEN][[1]]]))
    seen = Recorder(lambda net, images, channels: channels)
    monkeypatch.setattr(methods, "predict", seen)
    (fitted,) = t.finish(_result(2.5))
    assert fitted.task == SPLEEN and fitted.seconds == 2.5
    assert fitted.predict(torch.zeros(2, 1, 8, 8, 8)).tolist() == [names.index(SPLEEN)] * 2
    assert seen.calls[0][0][0] is job.net
    assert ctx.info["all_unet"]["tasks"] == 3 and ctx.info["all_unet"]["stopped_early"] is True


def test_fit_supervised_starts_the_largest_budget_first_and_matches_results(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[SupervisedJob]] = []

    def pool(jobs: Sequence[SupervisedJob], progress: bool = False) -> Iterator[tuple[int, SupervisedResult]]:
        started.append(list(jobs))
        for k in reversed(range(len(jobs))):  # finish in another order than started
            yield k, _result(float(jobs[k].cfg.steps) + (0.5 if jobs[k].desc == "spleen" else 0.0))

    monkeypatch.setattr(methods, "train_supervised_many", pool)
    monkeypatch.setattr(methods, "task_parts", lambda task: SimpleNamespace(short=task.split("/")[2].split("@")[0]))
    ctx = _ctx()
    out = list(fit_supervised(ctx, [(ConvUNetMethod(), [LIVER, SPLEEN]), (AllUNetMethod(), [LIVER])]))
    assert [j.cfg.steps for j in started[0]] == [5, 3, 3]
    assert [j.desc for j in started[0]] == ["All U-Net", "liver", "spleen"]  # ties keep their order
    got = {(name, f.task): f.seconds for name, f in out}
    assert got == {("conv_unet", LIVER): 3.0, ("conv_unet", SPLEEN): 3.5, ("all_unet", LIVER): 5.0}


# --- the registry -------------------------------------------------------------------------------

def test_registry_run_order_and_refusals() -> None:
    assert [n for n in REGISTRY if n in METHODS] == ["hyper_unet", "rand_unet", "copy_support", "conv_unet",
                                                     "all_unet"]
    with pytest.raises(ValueError, match=r"unknown method\(s\) \[\]"):
        methods_for([])
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nope'\]; choose from \['hyper_unet'"):
        methods_for(["all_unet", "nope"])
    assert [m.name for m in methods_for(["all_unet", "rand_unet", "all_unet"])] == ["rand_unet", "all_unet"]


# --- the commands ---------------------------------------------------------------------------------

@pytest.fixture()
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$HYPERKIT_DATA`` set to a folder of its own."""
    root = tmp_path / "envdata"
    monkeypatch.setenv("HYPERKIT_DATA", str(root))
    return root


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hyperkit: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture()
def fake_ablation(monkeypatch: pytest.MonkeyPatch, data_env: Path) -> Recorder:
    import hyperkit.evaluation.ablation as ablation

    rec = Recorder(["ROW"])
    monkeypatch.setattr(ablation, "run_ablation", rec)
    monkeypatch.setattr(ablation, "ablation_tables", lambda rows: f"TABLES{rows}")
    return rec


def test_ablate_defaults(fake_ablation: Recorder, data_env: Path, capsys: pytest.CaptureFixture) -> None:
    from hyperkit.evaluation.ablation import ABLATION_TARGETS

    assert main(["ablate", "--out", "o"]) == 0
    (profile, data, out), kw = fake_ablation.calls[0]
    assert (profile, data, out) == ("quick", data_env, "o")
    assert kw == {"only": None, "base_run": None, "episodes": None, "seed": None, "tasks": ABLATION_TARGETS,
                  "draws": None, "resume": False, "progress": True}
    assert capsys.readouterr().out == "TABLES['ROW']\n"


def test_ablate_flags(fake_ablation: Recorder) -> None:
    assert main(["ablate", "--out", "o", "--profile", "paper", "--data", "d", "--only", " step, ,pe ", "--base", "b",
                 "--episodes", "4", "--seed", "2", "--tasks", "liver", "spl*", "--draws", "3", "--resume",
                 "--no-progress"]) == 0
    (profile, data, _), kw = fake_ablation.calls[0]
    assert (profile, data) == ("paper", "d")
    assert kw == {"only": ["step", "pe"], "base_run": "b", "episodes": 4, "seed": 2, "tasks": ["liver", "spl*"],
                  "draws": 3, "resume": True, "progress": False}
    assert type(kw["episodes"]) is int and type(kw["draws"]) is int


@pytest.mark.parametrize("argv, words", [
    (["--episodes", "0"], "--episodes must be a positive integer, got 0"),
    (["--draws", "0"], "--draws must be a positive integer, got 0"),
])
def test_ablate_refuses_counts_below_one(fake_ablation: Recorder, capsys: pytest.CaptureFixture, argv: list[str],
                                         words: str) -> None:
    assert main(["ablate", "--out", "o", *argv]) == 2
    assert words in _one_line(capsys) and fake_ablation.calls == []


@pytest.fixture()
def fake_finetune(monkeypatch: pytest.MonkeyPatch, data_env: Path) -> dict[str, Recorder]:
    import hyperkit.evaluation.finetune as finetune

    recs = {"run": Recorder(["ROW"]), "table": Recorder(lambda rows, ref: f"TABLE{rows}{ref}"),
            "ref": Recorder(lambda path: {"REF": path})}
    monkeypatch.setattr(finetune, "run_finetune", recs["run"])
    monkeypatch.setattr(finetune, "finetune_table", recs["table"])
    monkeypatch.setattr(finetune, "reference_lines", recs["ref"])
    return recs


def test_finetune_defaults(fake_finetune: dict[str, Recorder], data_env: Path,
                           capsys: pytest.CaptureFixture) -> None:
    assert main(["finetune", "--checkpoint", "c.pt", "--out", "o", "--tasks", "liver", "spleen"]) == 0
    (ckpt, data, out), kw = fake_finetune["run"].calls[0]
    assert (ckpt, data, out) == ("c.pt", data_env, "o")
    assert kw == {"tasks": ["liver", "spleen"], "ns": [2, 4, 8], "repeats": 3,
                  "methods": ["hyper_ft", "rand_ft", "scratch_ft"], "seed": 0, "reference_from": None,
                  "resume": False, "progress": True}
    assert capsys.readouterr().out == "TABLE['ROW']None\nfigure: o/figure3.png\n"
    assert fake_finetune["ref"].calls == []


def test_finetune_flags(fake_finetune: dict[str, Recorder], capsys: pytest.CaptureFixture) -> None:
    assert main(["finetune", "--checkpoint", "c.pt", "--out", "o", "--tasks", "liver", "--data", "d",
                 "--n", "8, 2,8,", "--repeats", "1", "--methods", " scratch_ft , hyper_ft,", "--seed", "4",
                 "--reference-from", "r.csv", "--resume", "--no-progress"]) == 0
    (_, data, _), kw = fake_finetune["run"].calls[0]
    assert data == "d"
    assert kw == {"tasks": ["liver"], "ns": [2, 8], "repeats": 1, "methods": ["scratch_ft", "hyper_ft"], "seed": 4,
                  "reference_from": "r.csv", "resume": True, "progress": False}
    assert capsys.readouterr().out == "TABLE['ROW']{'REF': 'r.csv'}\nfigure: o/figure3.png\n"


@pytest.mark.parametrize("argv, words", [
    (["--n", "1,4"], "--n needs sizes >= 2, got '1,4'"),
    (["--n", ","], "--n needs sizes >= 2, got ','"),
    (["--n", "2,x"], "--n must be comma-separated integers, got '2,x'"),
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
])
def test_finetune_refuses_bad_sizes_and_repeats(fake_finetune: dict[str, Recorder], capsys: pytest.CaptureFixture,
                                                argv: list[str], words: str) -> None:
    assert main(["finetune", "--checkpoint", "c.pt", "--out", "o", "--tasks", "liver", *argv]) == 2
    assert words in _one_line(capsys) and fake_finetune["run"].calls == []


@pytest.mark.parametrize("text", ["", " , "])
def test_finetune_methods_naming_nothing_are_not_the_default(fake_finetune: dict[str, Recorder], text: str) -> None:
    """An empty ``--methods`` reaches ``run_finetune`` as no start (which refuses it), not as every start."""
    assert main(["finetune", "--checkpoint", "c.pt", "--out", "o", "--tasks", "liver", "--methods", text]) == 0
    assert fake_finetune["run"].calls[0][1]["methods"] == []


@pytest.fixture()
def fake_maml(monkeypatch: pytest.MonkeyPatch, data_env: Path) -> Recorder:
    import hyperkit.evaluation.maml as maml

    rec = Recorder(SimpleNamespace(table="TABLE3", out_dir=Path("od")))
    monkeypatch.setattr(maml, "run_maml", rec)
    return rec


def test_maml_defaults(fake_maml: Recorder, data_env: Path, capsys: pytest.CaptureFixture) -> None:
    from hyperkit.evaluation.maml import ORGANS

    assert main(["maml", "--checkpoint", "c.pt", "--out", "o"]) == 0
    (ckpt, data, out), kw = fake_maml.calls[0]
    assert (ckpt, data, out) == ("c.pt", data_env, "o")
    assert kw == {"organs": ORGANS, "meta_iterations": None, "draws": None, "seed": 0, "profile": None,
                  "split": None, "resume": False, "progress": True}
    od = Path("od")
    assert capsys.readouterr().out == f"TABLE3\nrows: {od / 'maml.csv'}; table: {od / 'table3.md'}\n"


def test_maml_flags(fake_maml: Recorder) -> None:
    assert main(["maml", "--checkpoint", "c.pt", "--out", "o", "--data", "d", "--organs", " liver , spleen,",
                 "--meta-iterations", "5", "--draws", "2", "--seed", "3", "--profile", "paper", "--split", "s.yaml",
                 "--resume", "--no-progress"]) == 0
    (_, data, _), kw = fake_maml.calls[0]
    assert data == "d"
    assert kw == {"organs": ["liver", "spleen"], "meta_iterations": 5, "draws": 2, "seed": 3, "profile": "paper",
                  "split": "s.yaml", "resume": True, "progress": False}


def test_every_command_module_registers_its_commands() -> None:
    """Each sub-command's parser is added by the module :data:`COMMANDS` names for it."""
    import argparse
    import importlib

    from hyperkit.commands import COMMANDS, SUMMARIES

    assert set(COMMANDS) == set(SUMMARIES)
    for name, module in COMMANDS.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(module).register(parser.add_subparsers())
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        assert name in sub.choices, (name, module)
