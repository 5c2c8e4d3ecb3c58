"""Audit of the config validator and the command-line glue (mutation testing found these gaps).

``hyperkit.config.schema``: conversion edge cases (tuple lengths, ``X | None``, numbers as strings,
bools as ints, the offending value named). The ``train``, ``evaluate``, ``generate``, ``segment``,
``tasks`` commands and ``hyperkit.cli.main``: every flag and default reaches the library function
(replaced here by a recorder, so no network is trained and each test takes well under a second),
the summary lines print what they claim, bad values exit 2 with one line naming the value.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hyperkit.cli import main
from hyperkit.config import METHODS, ONE_SHOT_METHODS
from hyperkit.config.schema import _convert, check_unknown, fields_from, optional_fields
from hyperkit.errors import ConfigError


# --- hyperkit.config.schema ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Inner:
    a: int = 1

    @classmethod
    def from_mapping(cls, data: Any, where: str) -> "_Inner":
        return cls(**fields_from(cls, data, where))


@dataclasses.dataclass(frozen=True)
class _Outer:
    n: int
    x: float = 0.5
    name: str | None = None
    inner: _Inner | None = None
    pair: tuple[int, float] = (1, 2.0)
    many: tuple[str, ...] = ()


def test_convert_scalars() -> None:
    assert _convert(3.0, int, "k") == 3 and type(_convert(3.0, int, "k")) is int
    with pytest.raises(ConfigError, match=r"k must be an integer, got 2\.5"):
        _convert(2.5, int, "k")
    with pytest.raises(ConfigError, match="k must be an integer, got True"):
        _convert(True, int, "k")
    with pytest.raises(ConfigError, match="k must be true or false, got 1"):
        _convert(1, bool, "k")
    with pytest.raises(ConfigError, match="k must be a string, got 5"):
        _convert(5, str, "k")
    assert _convert("1e-3", float, "k") == 1e-3 and _convert("7", int, "k") == 7
    for bad in (float("inf"), "nan", "-inf", float("nan")):
        with pytest.raises(ConfigError, match="k must be a finite number, got"):
            _convert(bad, float, "k")


def test_convert_optional_and_tuples() -> None:
    assert _convert(None, int | None, "k") is None and _convert("4", int | None, "k") == 4
    with pytest.raises(ConfigError, match=re.escape("k must be int | str, got None")):
        _convert(None, int | str, "k")  # a union without None does not take None
    assert _convert([1, "2.5"], tuple[int, float], "k") == (1, 2.5)
    for bad in ([1, 2.0, 3], [1]):
        with pytest.raises(ConfigError, match=r"k must be a list of 2 value\(s\), got \[1"):
            _convert(bad, tuple[int, float], "k")
    with pytest.raises(ConfigError, match=r"k\[1\] must be a string, got 3"):
        _convert(["a", 3], tuple[str, ...], "k")
    with pytest.raises(ConfigError, match=r"k must be a list of any number of value\(s\), got 'ab'"):
        _convert("ab", tuple[str, ...], "k")


def test_fields_from_names_the_key_and_value() -> None:
    assert optional_fields(_Outer) == {"x": 0.5, "name": None, "inner": None, "pair": (1, 2.0), "many": ()}
    out = fields_from(_Outer, {"n": "3", "inner": {"a": 2}, "name": None, "many": ["p", "q"]}, "sec")
    assert out == {"n": 3, "inner": _Inner(2), "name": None, "many": ("p", "q")}
    assert fields_from(_Outer, {"n": 1, "inner": None}, "sec")["inner"] is None
    with pytest.raises(ConfigError, match=r"sec\.inner\.a must be an integer, got 'z'"):
        fields_from(_Outer, {"n": 1, "inner": {"a": "z"}}, "sec")
    with pytest.raises(ConfigError, match=r"sec\.x must be a number, got 'z'"):
        fields_from(_Outer, {"n": 1, "x": "z"}, "sec")
    with pytest.raises(ConfigError, match=r"sec lacks key\(s\) \['n'\]"):
        fields_from(_Outer, {"x": 1.0}, "sec")
    for bad in ([("n", 1)], "n: 1", 3):
        with pytest.raises(ConfigError, match="sec must be a mapping of keys, got"):
            fields_from(_Outer, bad, "sec")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['zz'\] in sec; known: \['a', 'b'\]"):
        check_unknown({"a": 1, "zz": 2}, ("b", "a"), "sec")


# --- recorders for the library functions the commands call ----------------------------------------

class Recorder:
    """A stand-in for a library function: records its arguments, returns ``result``."""

    def __init__(self, result: Any) -> None:
        self.result, self.calls = result, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.result(*args, **kwargs) if callable(self.result) else self.result


@pytest.fixture()
def data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$HYPERKIT_DATA`` set to a folder of its own, no torchrun variables."""
    root = tmp_path / "envdata"
    monkeypatch.setenv("HYPERKIT_DATA", str(root))
    for var in ("WORLD_SIZE", "RANK", "HYPERKIT_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return root


# --- hyperkit train -------------------------------------------------------------------------------

@pytest.fixture()
def fake_train(monkeypatch: pytest.MonkeyPatch, data_env: Path) -> Recorder:
    import hyperkit.training.loop as loop

    rec = Recorder(SimpleNamespace(run_dir="RUN", episodes_done=9, first_dice=0.125, best_dice=0.5, best_episode=6,
                                    stopped_early=True))
    monkeypatch.setattr(loop, "train", rec)
    return rec


def test_train_defaults_reach_train(fake_train: Recorder, data_env: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--out", "o"]) == 0
    (cfg, data, out), kw = fake_train.calls[0]
    assert cfg["name"] == "quick" and data == data_env and out == "o"
    assert kw == {"episodes": None, "seed": None, "resume": False, "device": None, "progress": True, "bank": "auto",
                  "workers": None}
    assert capsys.readouterr().out.strip() == ("run: RUN  episodes: 9  one-shot val Dice: episode 0 0.125 -> best "
                                               "0.500 (episode 6)  [early stop]")


def test_train_flags_reach_train(fake_train: Recorder, capsys: pytest.CaptureFixture) -> None:
    fake_train.result.stopped_early = False
    assert main(["train", "--out", "o", "--data", "d", "--profile", "paper", "--episodes", "3", "--seed", "7",
                 "--resume", "--device", "cpu", "--no-progress", "--set", "train.lr=0.5", "--set", "seed=11",
                 "--bank", "disk", "--workers", "3"]) == 0
    (cfg, data, _), kw = fake_train.calls[0]
    assert cfg["name"] == "paper" and cfg["train"]["lr"] == 0.5 and cfg["seed"] == 11 and data == "d"
    assert kw == {"episodes": 3, "seed": 7, "resume": True, "device": "cpu", "progress": False, "bank": "disk",
                  "workers": 3}
    assert type(kw["episodes"]) is int
    assert not capsys.readouterr().out.rstrip().endswith("[early stop]")


def test_train_rank_other_than_0_prints_nothing(fake_train: Recorder, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "--out", "o"]) == 0 and capsys.readouterr().out == ""


@pytest.mark.parametrize("argv", [["--episodes", "0"], ["--episodes", "2.5"], []])
def test_train_bad_episodes_or_no_out(fake_train: Recorder, capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    full = ["train", *argv] + (["--out", "o"] if argv else [])
    try:
        code = main(full)
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2 and not fake_train.calls
    err = capsys.readouterr().err
    if argv == ["--episodes", "0"]:
        assert err == "hyperkit: error: --episodes must be a positive integer, got 0\n"


# --- hyperkit evaluate ----------------------------------------------------------------------------

@pytest.fixture()
def fake_eval(monkeypatch: pytest.MonkeyPatch, data_env: Path, tmp_path: Path) -> tuple[Recorder, Recorder]:
    import hyperkit.evaluation.run as run
    import hyperkit.evaluation.whole_scan as whole_scan

    timings = {"hyper_unet_fit_seconds_median": 1.5, "conv_unet_seconds_to_best_median": 30.0,
               "conv_over_hyper_ratio": 20.0}
    ev = Recorder(SimpleNamespace(tables="TABLES", record={"timings": timings, "wall_seconds": 3.0}, rows=[1, 2],
                                   csv_path=tmp_path / "e.csv"))
    ws = Recorder(SimpleNamespace(table="WS-TABLE", rows=[1], csv_path=tmp_path / "e-whole-scan.csv"))
    monkeypatch.setattr(run, "run_evaluation", ev)
    monkeypatch.setattr(whole_scan, "run_whole_scan", ws)
    return ev, ws


def test_methods_argument() -> None:
    import argparse

    from hyperkit.evaluation.cli import _methods

    assert _methods("all") == list(METHODS)
    assert _methods(" hyper_unet , conv_unet ,") == ["hyper_unet", "conv_unet"]
    for bad, shown in ((",", "','"), ("hyper_unet,nope", "['nope']")):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"unknown method\(s\) {re.escape(shown)}; choose from "
                                                              rf"{', '.join(METHODS)} or 'all'"):
            _methods(bad)


def test_evaluate_defaults(fake_eval: tuple[Recorder, Recorder], data_env: Path,
                           capsys: pytest.CaptureFixture) -> None:
    ev, ws = fake_eval
    assert main(["evaluate", "--checkpoint", "c.pt", "--out", "e.csv"]) == 0
    (ckpt, data, out), kw = ev.calls[0]
    assert (ckpt, data, out) == ("c.pt", data_env, "e.csv") and not ws.calls
    assert kw == {"tasks": None, "methods": list(ONE_SHOT_METHODS), "draws": None, "shots": None, "seed": 0,
                  "profile": None, "split": None, "overrides": None, "resume": False, "progress": True,
                  "baselines_from": None}
    printed = capsys.readouterr().out
    assert printed.startswith("TABLES\n") and "2 rows -> " in printed
    assert "generate + gradient step 1.50 s (median); Conv U-Net to its best validation 30 s (x20)" in printed


def test_evaluate_flags_reach_both_protocols(fake_eval: tuple[Recorder, Recorder],
                                             capsys: pytest.CaptureFixture) -> None:
    ev, ws = fake_eval
    assert main(["evaluate", "--checkpoint", "c.pt", "--out", "e.csv", "--data", "d", "--tasks", "liver", "heart*",
                 "--shots", "2", "--draws", "3", "--methods", "all", "--seed", "5", "--profile", "quick",
                 "--split", "s.yaml", "--set", "evaluate.adapt_lr=0.5", "--resume", "--baselines-from", "a.csv",
                 "b.csv", "--whole-scan", "--margin", "7.5", "--no-progress"]) == 0
    (_, data, _), kw = ev.calls[0]
    assert data == "d"
    assert kw == {"tasks": ["liver", "heart*"], "methods": list(METHODS), "draws": 3, "shots": 2, "seed": 5,
                  "profile": "quick", "split": "s.yaml", "overrides": {"adapt_lr": 0.5}, "resume": True,
                  "progress": False, "baselines_from": ["a.csv", "b.csv"]}
    (_, wdata, _), wkw = ws.calls[0]
    assert wdata == "d"
    assert wkw == {"tasks": ["liver", "heart*"], "draws": 3, "shots": 2, "seed": 5, "profile": "quick",
                   "split": "s.yaml", "overrides": {"adapt_lr": 0.5}, "margin_mm": 7.5, "compare_none": False,
                   "progress": False}
    assert "WS-TABLE" in capsys.readouterr().out


def test_evaluate_whole_scan_default_margin(fake_eval: tuple[Recorder, Recorder]) -> None:
    _, ws = fake_eval
    assert main(["evaluate", "--checkpoint", "c.pt", "--out", "e.csv", "--whole-scan"]) == 0
    assert ws.calls[0][1]["margin_mm"] == 20.0 and ws.calls[0][1]["seed"] == 0


@pytest.mark.parametrize("argv, words", [(["--set", "train.lr=0.1"], "only evaluate.* keys can be set here, got "
                                                                      "['train']"),
                                         (["--whole-scan", "--margin", "-1"],
                                          "--margin must be a finite number of mm >= 0, got -1.0")])
def test_evaluate_refuses_before_evaluating(fake_eval: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture,
                                            argv: list[str], words: str) -> None:
    assert main(["evaluate", "--checkpoint", "c.pt", "--out", "e.csv", *argv]) == 2
    assert not fake_eval[0].calls and words in capsys.readouterr().err


# --- hyperkit generate / segment ------------------------------------------------------------------

@pytest.fixture()
def fake_generate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    import hyperkit.inference.model_file as model_file
    import hyperkit.inference.segment as segment

    model = tmp_path / "m.pt"
    model.write_bytes(b"x" * 2000)
    meta = {"adaptation": {"adapted": True, "support_loss_before": 0.5, "support_loss_after": 0.25},
            "modality": "CT", "source": {"modality": "CT"}}
    recs = {"generate": Recorder(model), "default": Recorder(tmp_path / "quick.pt"),
            "load": Recorder((None, meta)), "meta": meta}
    monkeypatch.setattr(segment, "generate_model", recs["generate"])
    monkeypatch.setattr(segment, "default_checkpoint", recs["default"])
    monkeypatch.setattr(model_file, "load_unet", recs["load"])
    return recs


def test_generate_defaults(fake_generate: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    assert main(["generate", "--image", "i.nii", "--mask", "k.nii", "--out", "m.pt"]) == 0
    assert fake_generate["default"].calls == [((None,), {})]
    args, kw = fake_generate["generate"].calls[0]
    assert args == (fake_generate["default"].result, "i.nii", "k.nii", "m.pt")
    assert kw == {"profile": None, "modality": "auto", "channel_index": None, "label": None, "adapt": None,
                  "adapt_lr": None, "task": None}
    out = capsys.readouterr().out
    assert "reference checkpoint of the quick profile" in out and "support loss 0.5000 -> 0.2500" in out


def test_generate_flags(fake_generate: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    fake_generate["meta"]["adaptation"]["adapted"] = False
    assert main(["generate", "--image", "i.nii", "--mask", "k.nii", "--out", "m.pt", "--profile", "paper",
                 "--modality", " mri ", "--channel-index", "1", "--label", "2", "--task", "spleen", "--no-adapt",
                 "--adapt-lr", "0.1"]) == 0
    assert fake_generate["default"].calls == [(("paper",), {})]
    kw = fake_generate["generate"].calls[0][1]
    assert kw == {"profile": "paper", "modality": "MRI", "channel_index": 1, "label": 2, "adapt": False,
                  "adapt_lr": 0.1, "task": "spleen"}
    assert "support loss 0.5000 (no gradient step)" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", "c.pt", "--image", "i", "--mask", "k", "--out", "m", "--modality",
                 "ct"]) == 0
    assert fake_generate["generate"].calls[1][0][0] == "c.pt" and fake_generate["generate"].calls[1][1]["modality"] \
        == "CT" and len(fake_generate["default"].calls) == 1
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--image", "i", "--mask", "k", "--out", "m", "--label", "1.5"])
    assert exc.value.code == 2


@pytest.fixture()
def fake_segment(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    import hyperkit.inference.segment as segment

    rec = Recorder({"roi": {"box_mm": None, "source": "none"}, "output": "s.nii.gz", "voxels": 5, "volume_ml": 1.25,
                     "seconds": 0.5, "sidecar": "s.json"})
    monkeypatch.setattr(segment, "segment_file", rec)
    return rec


def test_segment_defaults(fake_segment: Recorder, capsys: pytest.CaptureFixture) -> None:
    assert main(["segment", "--model", "m.pt", "--image", "i.nii", "--out", "s.nii.gz"]) == 0
    args, kw = fake_segment.calls[0]
    assert args == ("m.pt", "i.nii", "s.nii.gz")
    assert kw == {"roi": None, "margin_mm": 20.0, "channel_index": None, "overlap": 0.25, "sw_batch_size": 1,
                  "device": "cpu", "threshold": 0.0, "largest_component": False, "keep": "all", "fill_holes": False}
    assert "5 voxels segmented  1.2 ml  [whole scan; 0.5 s]  record: s.json" in capsys.readouterr().out


def test_segment_flags(fake_segment: Recorder, capsys: pytest.CaptureFixture) -> None:
    fake_segment.result.update(roi={"box_mm": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "source": "auto"},
                               registration={"seconds": 1.5})
    assert main(["segment", "--model", "m.pt", "--image", "i.nii", "--out", "s.nii.gz", "--roi", "auto",
                 "--margin", "5", "--channel-index", "2", "--overlap", "0.5", "--sw-batch-size", "4", "--device",
                 "cuda", "--threshold", "0.3", "--largest-component", "--keep-roi-components", "--fill-holes"]) == 0
    assert fake_segment.calls[0][1] == {"roi": "auto", "margin_mm": 5.0, "channel_index": 2, "overlap": 0.5,
                                        "sw_batch_size": 4, "device": "cuda", "threshold": 0.3,
                                        "largest_component": True, "keep": "roi", "fill_holes": True}
    assert "[ROI (auto) 1,2,3,4,5,6 mm, registered in 1.5 s; 0.5 s]" in capsys.readouterr().out


# --- hyperkit.cli.main ----------------------------------------------------------------------------

def test_main_exit_codes_and_messages(fake_train: Recorder, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    import warnings

    import hyperkit.training.loop as loop

    before = lambda *args, **kwargs: "w"  # noqa: E731
    monkeypatch.setattr(warnings, "formatwarning", before)
    assert main(["train", "--out", "o"]) == 0 and warnings.formatwarning is before  # the kit's format is undone
    capsys.readouterr()

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", interrupted)
    assert main(["train", "--out", "o"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "hyperkit: interrupted\n" and captured.out == ""  # before a checkpoint: no --resume hint

    def stopped(*args: Any, **kwargs: Any) -> None:  # what the training loop raises once it saved last.pt
        raise KeyboardInterrupt("stopped after episode 12; continue with --resume")

    monkeypatch.setattr(loop, "train", stopped)
    assert main(["train", "--out", "o"]) == 130
    assert capsys.readouterr().err == "hyperkit: interrupted: stopped after episode 12; continue with --resume\n"
    import hyperkit.evaluation.run as run_mod

    monkeypatch.setattr(run_mod, "run_evaluation", interrupted)  # a command that keeps its finished rows
    assert main(["evaluate", "--checkpoint", "c.pt", "--out", "r.csv"]) == 130
    assert capsys.readouterr().err == ("hyperkit: interrupted; what finished is kept: the same command with "
                                       "--resume goes on from there\n")

    def missing(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory", "a.pt", None, "b.pt")

    monkeypatch.setattr(loop, "train", missing)
    assert main(["train", "--out", "o"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "hyperkit: error: a.pt -> b.pt: no such file or directory\n" and captured.out == ""
    monkeypatch.setenv("HYPERKIT_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["train", "--out", "o"])


def test_unknown_option_hint_splits_at_equals(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", "o", "--episdoes=3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: hyperkit train") and "did you mean '--episodes' for '--episdoes'?" in err
    with pytest.raises(SystemExit) as exc:
        main(["--"])  # no command at all: argparse's complaint, not a traceback
    assert exc.value.code == 2 and "required: COMMAND" in capsys.readouterr().err


# --- hyperkit tasks -------------------------------------------------------------------------------

def test_tasks_split_and_totals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from hyperkit.data.sample import write_sample_msd, write_sample_totalseg

    write_sample_totalseg(tmp_path / "d", structures=("aorta", "stomach"))
    write_sample_msd(tmp_path / "d", "Task01_BrainTumour", channels=("FLAIR",), labels=("edema", "tumour"),
                     absent={0: (2,)})
    split = tmp_path / "split.yaml"
    split.write_text("heldout: ['*aorta*']\n")
    assert main(["tasks", str(tmp_path / "d"), "--json", "--split", str(split)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith('[\n  {\n    "id": ')  # indented, one key a line
    rows = {r["id"]: r for r in json.loads(printed)}
    aorta, stomach = rows["totalseg/TotalSegmentator/aorta@CT"], rows["totalseg/TotalSegmentator/stomach@CT"]
    assert (aorta["role"], stomach["role"]) == ("heldout", "unused")
    tumour = rows["msd/Task01_BrainTumour/tumour@FLAIR"]
    assert (tumour["cases"], tumour["cases_total"], tumour["missing_in"]) == (2, 3, ["sample_000"])


def _row(tid: str, missing: int, role: str) -> dict[str, Any]:
    return {"id": tid, "layout": "msd", "dataset": "D", "class": "c", "channel": "CT", "cases": 7 - missing,
            "cases_total": 7, "missing_in": [f"case{i}" for i in range(missing)], "role": role}


def test_tasks_table_notes(capsys: pytest.CaptureFixture) -> None:
    from hyperkit.data.cli import _print_table

    _print_table([_row("a-long-task-id", 0, "train"), _row("b", 5, "heldout"), _row("c", 6, "heldout"),
                  _row("d", 0, "unused")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "layout", "dataset", "class", "channel", "cases", "role"]
    assert lines[1].split()[-2:] == ["7/7", "train"]
    assert lines[1].index("msd") == lines[0].index("layout") == lines[2].index("msd")  # aligned columns
    assert "4 tasks: 1 train, 2 heldout, 1 unused" in lines  # roles with no task are not listed
    notes = [line for line in lines if line.startswith("note:")]
    assert notes == ["note: b is absent in case0, case1, case2, case3, case4",
                     "note: c is absent in case0, case1, case2, case3, case4, ... (6 cases)"]
