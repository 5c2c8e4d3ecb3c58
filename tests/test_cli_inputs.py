"""Bad command-line input fails up front with one line, and never destroys an input or blocks a re-run.

Each test here failed on the kit before its check existed: an output written over an input, a
record left by a run that failed validation, a value silently truncated or ignored, a traceback.
A tiny untrained hypernetwork and the sample datasets keep every test to a few seconds.
"""

from __future__ import annotations

import json

import hashlib
from pathlib import Path

import pytest
import torch
from test_ablation import setup  # noqa: F401  (the fixture: its data and tiny profile serve here too)

from hyperkit.cli import main
from hyperkit.config import load_profile
from hyperkit.data.splits import load_split
from hyperkit.errors import ConfigError, HyperkitError
from hyperkit.evaluation.finetune import run_finetune
from hyperkit.evaluation.maml import run_maml
from hyperkit.files import save_atomic
from hyperkit.training.checkpoint import CHECKPOINT_KIND, load_checkpoint
from tiny import untrained_checkpoint


@pytest.fixture(scope="module")
def kit(setup: tuple[Path, Path]) -> dict[str, Path]:
    """test_ablation's data (liver MSD task + a TotalSegmentator cohort) and tiny profile, a checkpoint
    of that profile (untrained) and a model file generated from it."""
    data, profile = setup
    root = profile.parent
    cfg = load_profile(profile, {"evaluate": {"draws": 1, "finetune": {"steps": 2, "val_every": 1, "patience": 1,
                                                                       "warmup": 0, "augment": False}}})
    ckpt = untrained_checkpoint(cfg, root / "best.pt")
    out = {"data": data, "ckpt": ckpt, "profile": profile,
           "image": data / "Task03_Liver" / "imagesTr" / "sample_000.nii.gz",
           "mask": data / "Task03_Liver" / "labelsTr" / "sample_000.nii.gz",
           "model": root / "model.nii.gz"}  # a model file may have any name, even a NIfTI one
    assert main(["generate", "--checkpoint", str(ckpt), "--image", str(out["image"]), "--mask", str(out["mask"]),
                 "--out", str(out["model"])]) == 0
    return out


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hyperkit: error: ") and err.count("\n") == 1, err
    return err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_file_given_as_checkpoint_says_what_it_is(kit, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(kit["model"]), "--data", str(kit["data"]),
                 "--out", str(tmp_path / "e.csv")]) == 2
    err = _one_line(capsys)
    assert "U-Net model file of `hyperkit generate`" in err and "best.pt or last.pt" in err
    assert not (tmp_path / "e.csv").exists()


@pytest.mark.parametrize("command", ["generate", "segment"])
def test_missing_scan_is_named_before_the_weights_load(kit, tmp_path, capsys, command):
    junk = tmp_path / "junk.pt"  # unreadable weights: the old order reported these, not the scan
    junk.write_bytes(b"not a torch file")
    missing = tmp_path / "no_such_scan.nii.gz"
    args = (["generate", "--checkpoint", str(junk), "--image", str(missing), "--mask", str(kit["mask"]),
             "--out", str(tmp_path / "m.pt")] if command == "generate" else
            ["segment", "--model", str(junk), "--image", str(missing), "--out", str(tmp_path / "s.nii.gz")])
    assert main(args) == 2
    assert _one_line(capsys).rstrip().endswith(f"{missing}: file not found")


def test_generate_with_the_wrong_modality_names_the_flag(kit, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    src = nib.load(kit["image"])
    data = np.asarray(src.dataobj, dtype=np.float32)
    mri_like = tmp_path / "mri.nii.gz"  # no negative value: not Hounsfield units
    nib.save(nib.Nifti1Image(data - data.min(), src.affine), mri_like)
    assert main(["generate", "--checkpoint", str(kit["ckpt"]), "--image", str(mri_like), "--mask", str(kit["mask"]),
                 "--out", str(tmp_path / "m.pt"), "--modality", "CT"]) == 2
    err = _one_line(capsys)
    assert "read as --modality CT, but the support looks like MRI" in err and \
        err.rstrip().endswith("pass --modality MRI")
    assert not (tmp_path / "m.pt").exists()


def test_generate_reads_the_modality_from_the_support(kit, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    from hyperkit.inference.model_file import load_unet

    src = nib.load(kit["image"])
    data = np.asarray(src.dataobj, dtype=np.float32)
    mri_like = tmp_path / "mri.nii.gz"  # no negative value: read as MRI without --modality
    nib.save(nib.Nifti1Image(data - data.min(), src.affine), mri_like)
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(kit["ckpt"]), "--image", str(mri_like), "--mask", str(kit["mask"]),
                 "--out", str(tmp_path / "m.pt")]) == 0
    assert "modality: MRI (detected: no negative value" in capsys.readouterr().out
    meta = load_unet(tmp_path / "m.pt")[1]
    assert meta["modality"] == "MRI" and meta["source"]["modality"].startswith("detected")
    # a CT body with air is read as CT, a CT without air by default; both equal --modality CT
    no_air = tmp_path / "crop.nii.gz"
    nib.save(nib.Nifti1Image(np.clip(data, -200, None), src.affine), no_air)
    for image, says in ((kit["image"], "modality: CT (detected: air"), (no_air, "modality: CT (the default")):
        capsys.readouterr()
        assert main(["generate", "--checkpoint", str(kit["ckpt"]), "--image", str(image), "--mask", str(kit["mask"]),
                     "--out", str(tmp_path / "auto.pt")]) == 0
        assert says in capsys.readouterr().out
        assert main(["generate", "--checkpoint", str(kit["ckpt"]), "--image", str(image), "--mask", str(kit["mask"]),
                     "--out", str(tmp_path / "ct.pt"), "--modality", "ct"]) == 0
        assert "modality: CT (given (--modality))" in capsys.readouterr().out
        a, b = (load_unet(tmp_path / n)[0].state_dict() for n in ("auto.pt", "ct.pt"))
        assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ generate / segment outputs
@pytest.mark.parametrize("command,out_key,name", [
    ("generate", "image", "image"), ("generate", "mask", "mask"), ("generate", "ckpt", "checkpoint"),
    ("segment", "image", "image"), ("segment", "model", "model")])
def test_out_that_is_an_input_is_refused_and_left_intact(kit, tmp_path, capsys, command, out_key, name):
    own = {k: tmp_path / f"{k}-{kit[k].name}" for k in ("ckpt", "image", "mask", "model")}  # the fixture's stay intact
    for k, p in own.items():
        p.write_bytes(kit[k].read_bytes())
    argv = (["generate", "--checkpoint", str(own["ckpt"]), "--image", str(own["image"]), "--mask", str(own["mask"])]
            if command == "generate" else ["segment", "--model", str(own["model"]), "--image", str(own["image"])])
    target = own[out_key]
    before = _digest(target)
    capsys.readouterr()
    assert main(argv + ["--out", str(target.parent / ".." / target.parent.name / target.name)]) == 2
    assert f"the {name} it reads" in _one_line(capsys)
    assert _digest(target) == before


def test_an_existing_file_is_replaced_only_when_the_command_wrote_it(kit, tmp_path, capsys):
    """``generate --out`` replaced a training checkpoint or a results table, and ``segment --out`` a label map,
    without a word (exit 0): an existing file is now replaced only when it is the command's own output (a model
    file; a mask with its segment record), and anything else is kept with a one-line refusal."""
    gen = ["generate", "--checkpoint", str(kit["ckpt"]), "--image", str(kit["image"]), "--mask", str(kit["mask"])]
    seg = ["segment", "--model", str(kit["model"]), "--image", str(kit["image"]), "--roi", "none"]
    checkpoint, table, label = tmp_path / "last.pt", tmp_path / "results.csv", tmp_path / "label.nii.gz"
    checkpoint.write_bytes(kit["ckpt"].read_bytes())
    table.write_text("task,method,dsc\n")
    label.write_bytes(kit["mask"].read_bytes())
    for argv, target, what in ((gen, checkpoint, "not a model file of `hyperkit generate`"),
                               (gen, table, "not a model file"), (seg, label, "not a mask of `hyperkit segment`")):
        before = _digest(target)
        capsys.readouterr()
        assert main(argv + ["--out", str(target)]) == 2
        assert f"exists and is {what}" in _one_line(capsys) and _digest(target) == before
    # the command's own outputs are replaced, as a second run with other settings does
    model, mask = tmp_path / "model.pt", tmp_path / "mask.nii.gz"
    assert main(gen + ["--out", str(model)]) == 0 and main(gen + ["--out", str(model), "--no-adapt"]) == 0
    assert main(seg + ["--out", str(mask)]) == 0 and main(seg + ["--out", str(mask), "--threshold", "1"]) == 0
    assert json.loads((tmp_path / "mask.json").read_text())["settings"]["threshold"] == 1


def test_segment_sidecar_that_is_an_input_is_refused(kit, tmp_path, capsys):
    model = tmp_path / "seg.json"  # `--out seg.nii.gz` writes its record to seg.json
    model.write_bytes(kit["model"].read_bytes())
    capsys.readouterr()
    assert main(["segment", "--model", str(model), "--image", str(kit["image"]), "--out",
                 str(tmp_path / "seg.nii.gz")]) == 2
    assert "seg.json, which is the model it reads" in _one_line(capsys)
    assert not (tmp_path / "seg.nii.gz").exists()


@pytest.mark.parametrize("extra,words", [
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/mask.txt"], "must end in .nii.gz or .nii"),
    (["--out", "{tmp}/m.nii.gz", "--threshold", "nan"], "--threshold must be a finite logit, got nan"),
    # --roi none (every row here) maps no box: a margin given with it was ignored without a word
    (["--out", "{tmp}/m.nii.gz", "--margin", "5"], "--margin 5 applies to --roi auto only"),
])
def test_segment_bad_output_or_values(kit, tmp_path, capsys, extra, words):
    capsys.readouterr()
    assert main(["segment", "--model", str(kit["model"]), "--image", str(kit["image"]), "--roi", "none"]
                + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert words in _one_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.parametrize("extra,words", [
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/m.pt", "--no-adapt", "--adapt-lr", "0.5"], "--adapt-lr 0.5 would be ignored"),
])
def test_generate_bad_output_or_ignored_value(kit, tmp_path, capsys, extra, words):
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(kit["ckpt"]), "--image", str(kit["image"]), "--mask",
                 str(kit["mask"])] + [a.format(tmp=tmp_path) for a in extra]) == 2
    assert words in _one_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == []


# ------------------------------------------------------------------ checkpoints and the command line
def test_a_file_that_is_not_a_checkpoint_says_so_without_torch_advice(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("these are notes\n")
    with pytest.raises(HyperkitError, match=r"notes\.pt: not a hyperkit checkpoint \(not a torch file\)$"):
        load_checkpoint(text)
    whole = save_atomic({"kind": CHECKPOINT_KIND, "w": torch.zeros(1000)}, tmp_path / "whole.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(HyperkitError, match=r"cut\.pt: not a hyperkit checkpoint \(a truncated or damaged") as err:
        load_checkpoint(cut)
    assert "weights_only" not in str(err.value)


def test_os_errors_and_multi_line_messages_are_one_line(monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise IsADirectoryError(21, "Is a directory", "somewhere")

    monkeypatch.setattr("hyperkit.phantoms.cli.generate_phantoms", boom)
    assert main(["phantoms", "--out", "x"]) == 2
    assert _one_line(capsys) == "hyperkit: error: somewhere: is a directory\n"  # the kit's form, no [Errno 21]

    def two_lines(*args, **kwargs):
        raise ValueError("first line\n  second line, column 7")

    monkeypatch.setattr("hyperkit.phantoms.cli.generate_phantoms", two_lines)
    assert main(["phantoms", "--out", "x"]) == 2
    assert "first line second line, column 7" in _one_line(capsys)


def test_a_file_where_a_folder_is_needed_is_named_as_such(kit, tmp_path, capsys):
    """``--out afile/x.pt`` with ``afile`` a file said "afile: file exists" (generate, train, finetune ...): the
    message now says the file stands where a folder is needed, also for a path below it."""
    afile = tmp_path / "afile"
    afile.write_text("notes\n")
    gen = ["generate", "--checkpoint", str(kit["ckpt"]), "--image", str(kit["image"]), "--mask", str(kit["mask"])]
    for out in (afile / "x.pt", afile / "sub" / "x.pt"):
        capsys.readouterr()
        assert main(gen + ["--out", str(out)]) == 2
        assert _one_line(capsys) == f"hyperkit: error: {afile}: is a file, where a folder is needed\n"
    assert afile.read_text() == "notes\n"


@pytest.mark.parametrize("device,words", [("foo", "--device 'foo' is not a torch device"),
                                          ("cuda", "--device 'cuda': CUDA is not available")])
def test_train_device_is_checked_as_segment_does(tmp_path, capsys, device, words):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "--out", str(tmp_path / "run"), "--device", device, "--data", str(tmp_path)]) == 2
    assert words in _one_line(capsys)
    assert not (tmp_path / "run").exists()


def test_phantoms_workers_below_one_are_refused(tmp_path, capsys):
    for workers in ("0", "-5"):
        assert main(["phantoms", "--out", str(tmp_path / "ph"), "--subjects", "1", "--cases", "1",
                     "--spacing", "6", "--workers", workers, "--quiet"]) == 2
        assert f"workers must be a positive integer (processes), got {workers}" in _one_line(capsys)
    assert not (tmp_path / "ph").exists()


@pytest.mark.parametrize("timeout", ["1.5", "nan", "inf", "0"])
def test_reproduce_timeout_is_whole_positive_seconds(tmp_path, capsys, timeout):
    (tmp_path / "nb").mkdir()
    assert main(["reproduce", "--timeout", timeout, "--notebooks", str(tmp_path / "nb"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "--timeout must be a positive whole number of seconds" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_finetune_description_has_no_doubled_percent(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out and "20 %" in out


# ------------------------------------------------------------------ profiles and split files
@pytest.mark.parametrize("overrides,words", [
    ({"seed": 1.5}, "seed must be an integer, got 1.5"),
    ({"seed": "abc"}, "seed must be an integer, got 'abc'"),
    ({"seed": -1}, "seed must be >= 0, got -1"),
    ({"model": {"hidden": -3}}, "model.hidden must be >= 1, got -3"),
    ({"model": {"base_width": 0}}, "model.base_width must be >= 1, got 0"),
    ({"model": {"zstar_dim": 0}}, "model.zstar_dim must be >= 1, got 0"),
])
def test_profile_values_are_refused_when_loaded(overrides, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_profile("quick", overrides)


def test_set_seed_names_the_key(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--set", "seed=abc"]) == 2
    assert "seed must be an integer, got 'abc'" in _one_line(capsys)


@pytest.mark.parametrize("load,text,words", [
    (load_profile, "base: quick\ntrain: {1: 2, foo: 3}\n", r"unknown key\(s\) \[1, 'foo'\] in train"),
    (load_split, "1: [a]\nfoo: [b]\n", r"unknown role\(s\) \[1, 'foo'\]")])
def test_mixed_type_unknown_keys_are_listed(tmp_path, load, text, words):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load(path)


def test_yaml_error_keeps_its_line_and_column(tmp_path, capsys):
    profile = tmp_path / "bad.yaml"
    profile.write_text("base: quick\ntrain: {episodes: [\n")
    assert main(["train", "--out", str(tmp_path / "run"), "--profile", str(profile)]) == 2
    assert "bad.yaml: not valid YAML (line 3, column 1: expected the node content" in _one_line(capsys)


# ------------------------------------------------------------------ runs: validate before any record
def test_evaluate_too_many_shots_leaves_nothing_and_the_rerun_works(kit, tmp_path, capsys):
    out = tmp_path / "ev" / "r.csv"
    argv = ["evaluate", "--checkpoint", str(kit["ckpt"]), "--data", str(kit["data"]), "--out", str(out),
            "--tasks", "liver", "--methods", "copy_support", "--draws", "1", "--no-progress"]
    assert main(argv + ["--shots", "50"]) == 2
    assert "cannot give 50 support(s)" in _one_line(capsys)
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert main(argv + ["--shots", "1"]) == 0


def test_evaluate_writes_only_beside_a_csv_and_keeps_files_it_did_not_write(kit, tmp_path, capsys):
    """``--out newdir/`` wrote a file ``newdir`` and ``newdir.json`` into the parent folder, ``--out e1.txt`` a
    table named .txt; a ``foo.json`` / ``foo.md`` of something else beside ``--out foo.csv`` was replaced; a CSV
    that is not a results file got a ``.json`` before ``--resume`` refused it; a damaged record was named by the
    parser's complaint alone. Each is now a one-line refusal that leaves every file as it was."""
    argv = ["evaluate", "--checkpoint", str(kit["ckpt"]), "--data", str(kit["data"]), "--tasks", "liver",
            "--methods", "copy_support", "--draws", "1", "--no-progress"]
    folder = tmp_path / "newdir"
    for out, words in ((f"{folder}/", "is a folder; give the results file to write"),
                       (str(tmp_path / "e1.txt"), "must end in .csv")):
        capsys.readouterr()
        assert main(argv + ["--out", out]) == 2 and words in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []
    foo = tmp_path / "foo.csv"
    for name, text, words in (("foo.json", '{"mine": 1}', "foo.json exists and is not the record of an evaluation"),
                              ("foo.json", "{cut", "foo.json: not readable as an evaluation record (Expecting"),
                              ("foo.md", "# my notes\n", "foo.md exists beside no evaluation record")):
        (tmp_path / name).write_text(text)
        capsys.readouterr()
        assert main(argv + ["--out", str(foo)]) == 2 and words in _one_line(capsys)
        assert (tmp_path / name).read_text() == text and not foo.exists()
        (tmp_path / name).unlink()
    foo.write_text("a,b\n1,2\n")  # a CSV of something else, given to --resume
    capsys.readouterr()
    assert main(argv + ["--out", str(foo), "--resume"]) == 2 and "not a hyperkit results file" in _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foo.csv"]


def test_evaluate_margin_without_whole_scan_is_refused(kit, tmp_path, capsys):
    """``--margin`` acts on ``--whole-scan`` only; without it, it was ignored without a word."""
    out = tmp_path / "r.csv"
    assert main(["evaluate", "--checkpoint", str(kit["ckpt"]), "--data", str(kit["data"]), "--out", str(out),
                 "--tasks", "liver", "--methods", "copy_support", "--margin", "5", "--no-progress"]) == 2
    assert "--margin 5 applies to --whole-scan only" in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_whole_scan_margin_fails_before_the_patch_evaluation(kit, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["evaluate", "--checkpoint", str(kit["ckpt"]), "--data", str(kit["data"]), "--out", str(out),
                 "--tasks", "liver", "--methods", "copy_support", "--whole-scan", "--margin", "-50",
                 "--no-progress"]) == 2
    assert "--margin must be a finite number of mm >= 0, got -50" in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_finetune_missing_reference_fails_before_fine_tuning(kit, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", "--checkpoint", str(kit["ckpt"]), "--data", str(kit["data"]), "--out", str(out),
                 "--tasks", "liver", "--n", "2", "--repeats", "1", "--methods", "scratch_ft",
                 "--reference-from", str(tmp_path / "missing.csv"), "--no-progress"]) == 2
    assert "missing.csv: no results file" in _one_line(capsys)
    assert not out.exists()


def test_negative_seed_is_refused_before_any_record(kit, tmp_path, capsys):
    for argv, record in (
            (["ablate", "--profile", str(kit["profile"]), "--tasks", "liver"], "ablation.json"),
            (["finetune", "--checkpoint", str(kit["ckpt"]), "--tasks", "liver", "--n", "2", "--repeats", "1"],
             "finetune.csv")):
        out = tmp_path / argv[0]
        assert main(argv + ["--data", str(kit["data"]), "--out", str(out), "--seed", "-1", "--no-progress"]) == 2
        assert "seed must be >= 0, got -1" in _one_line(capsys)
        assert not (out / record).exists()
    # evaluate too, before the checkpoint and the data are read (it failed after, naming a task and "keys")
    for whole in ([], ["--whole-scan"]):
        out = tmp_path / "ev" / "r.csv"
        assert main(["evaluate", "--checkpoint", str(tmp_path / "no.pt"), "--data", str(kit["data"]), "--out",
                     str(out), "--tasks", "liver", "--seed", "-1", "--no-progress", *whole]) == 2
        assert "seed must be >= 0, got -1" in _one_line(capsys)
        assert not (tmp_path / "ev").exists()
    # the seed is checked before the checkpoint is even read (maml.json comes after it)
    missing = tmp_path / "no.pt"
    with pytest.raises(ConfigError, match="seed must be >= 0, got -1"):
        run_maml(missing, kit["data"], tmp_path / "mm", seed=-1, progress=False)
    with pytest.raises(ConfigError, match="seed must be >= 0, got -1"):
        run_finetune(missing, kit["data"], tmp_path / "ft2", tasks=["liver"], seed=-1, progress=False)
    # so is the number of fine-tunings at once (before, it was met only after finetune.json was written)
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        run_finetune(missing, kit["data"], tmp_path / "ft2", tasks=["liver"], workers=0, progress=False)
    assert not (tmp_path / "mm").exists() and not (tmp_path / "ft2").exists()


def test_ablate_base_must_be_a_finished_run(kit, tmp_path, capsys):
    base = tmp_path / "base"
    base.mkdir()
    out = tmp_path / "abl"
    argv = ["ablate", "--profile", str(kit["profile"]), "--data", str(kit["data"]), "--out", str(out),
            "--tasks", "liver", "--only", "step", "--no-progress"]
    assert main(argv + ["--base", str(base)]) == 2
    assert "holds no training run" in _one_line(capsys)
    assert list(base.iterdir()) == [] and not out.exists()


def test_ablate_default_targets_are_checked_before_training(kit, tmp_path, capsys):
    out = tmp_path / "abl"
    assert main(["ablate", "--profile", str(kit["profile"]), "--data", str(kit["data"]), "--out", str(out),
                 "--only", "step", "--no-progress"]) == 2  # the paper's six: only liver is in this data
    assert "matches no held-out task" in _one_line(capsys)
    assert not out.exists()


def test_help_summaries_have_one_source() -> None:
    """``hyperkit --help`` (no command module imported) and each command's own parser show the same line."""
    import argparse

    from hyperkit.cli import build_parser
    from hyperkit.commands import COMMANDS, SUMMARIES

    assert set(SUMMARIES) == set(COMMANDS)
    for command in ("*", None):
        sub = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
        shown = {c.dest: c.help for c in sub._choices_actions}
        assert shown == SUMMARIES, command


def test_bare_hyperkit_lists_the_commands(capsys) -> None:
    """``hyperkit`` alone prints the whole help (every command and its summary), not one usage line."""
    from hyperkit.commands import SUMMARIES

    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in SUMMARIES) and "segment a scan" in out


@pytest.mark.parametrize("argv, hint", [
    (["trian"], "did you mean 'train'?"),
    (["reproduce", "--progress", "lve"], "did you mean 'live'?"),
    (["train", "--data", "d", "--out", "o", "--episdoes", "3"], "did you mean '--episodes' for '--episdoes'?"),
    (["tasks", "--jsn"], "did you mean '--json' for '--jsn'?"),
])
def test_a_mistyped_word_names_the_closest_valid_one(argv, hint, capsys) -> None:
    """A wrong command, choice or option ends (exit 2, nothing run) naming the valid word it resembles."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith(hint), err
    if argv[0] != "trian":
        assert f"hyperkit {argv[0]}: error:" in err  # the sub-command's own usage and name


def test_no_hint_for_a_word_like_no_valid_one(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--data", "d", "--out", "o", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def test_cli_formats_only_the_kits_own_warnings() -> None:
    """A UserWarning raised from a module of hyperkit prints as one ``hyperkit: warning:`` line; a
    warning from anywhere else keeps Python's format (file, line, category)."""
    from pathlib import Path

    from hyperkit import cli

    ours = cli._format_warning("a\n  b", UserWarning, str(Path(cli.__file__).parent / "data" / "bank.py"), 3)
    assert ours == "hyperkit: warning: a b\n"
    theirs = cli._format_warning("x", UserWarning, "/elsewhere/monai/utils.py", 7)
    assert "UserWarning" in theirs and "utils.py:7" in theirs
    assert "FutureWarning" in cli._format_warning("y", FutureWarning, str(Path(cli.__file__)), 1)


def _last_error(capsys: pytest.CaptureFixture) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hyperkit: error: ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_train_with_no_case_of_its_splits_names_the_splits_and_the_data_folder(kit, tmp_path, capsys):
    """A case split no subject carries (or none at all) was blamed on tasks with too few cases; now the splits asked
    for and those the subjects carry are named. One dataset given as --data was named by its parent folder."""
    data = kit["data"]
    argv = ["train", "--profile", str(kit["profile"]), "--device", "cpu", "--no-progress"]
    with pytest.warns(UserWarning, match="left out"):
        assert main(argv + ["--data", str(data), "--out", str(tmp_path / "a"), "--set",
                            "train.val_splits=[nosuch]"]) == 2
    err = _last_error(capsys)
    assert err.startswith(f"hyperkit: error: {data}: no val task with at least 2 cases (")
    assert err.endswith(": the case splits ['nosuch'] match 0 of the 4 cases with a split "
                        "(their splits: train 2, val 1, test 1)")
    with pytest.warns(UserWarning, match="left out"):
        assert main(argv + ["--data", str(data), "--out", str(tmp_path / "b"), "--set", "train.train_splits=[]"]) == 2
    err = _last_error(capsys)
    assert "no train task with at least 2 cases" in err and "the case splits [] match 0 of the 4 cases" in err
    one = data / "Task03_Liver"  # one dataset, no training task: named itself, not the folder above it
    assert main(argv + ["--data", str(one), "--out", str(tmp_path / "c")]) == 2
    assert _last_error(capsys) == f"hyperkit: error: {one}: no train task with at least 2 cases"


def test_ablate_base_of_another_config_or_budget_names_it_and_never_says_remove(kit, tmp_path, capsys):
    """A --base trained with other settings was called "a run with another config; remove it"; one that finished
    its own smaller budget was called unfinished (episode 1 of 2). Both now say what differs and what to pass."""
    from hyperkit.evaluation.ablation import _check_base_run

    train = ["train", "--profile", str(kit["profile"]), "--data", str(kit["data"]), "--device", "cpu",
             "--no-progress"]
    ablate = ["ablate", "--profile", str(kit["profile"]), "--data", str(kit["data"]), "--out", str(tmp_path / "abl"),
              "--tasks", "liver", "--only", "step", "--no-progress", "--base"]
    short = tmp_path / "short"
    assert main(train + ["--out", str(short), "--episodes", "1"]) == 0
    capsys.readouterr()
    assert main(ablate + [str(short)]) == 2
    assert _last_error(capsys) == (
        f"hyperkit: error: --base {short}: its training run stopped at its own budget of 1 episodes, this ablation "
        f"trains 2; pass --episodes 1 to ablate against it, or finish it (hyperkit train --out {short} --resume "
        "--episodes 2)")
    _check_base_run(short, load_profile(kit["profile"]), kit["data"], 1, None)  # --episodes 1: accepted
    assert main(train + ["--out", str(short), "--resume", "--episodes", "2"]) == 0  # or finished, as advised
    _check_base_run(short, load_profile(kit["profile"]), kit["data"], None, None)
    other = tmp_path / "other"
    assert main(train + ["--out", str(other), "--seed", "3", "--set", "train.val_every=1"]) == 0
    capsys.readouterr()
    assert main(ablate + [str(other)]) == 2
    err = _last_error(capsys)
    assert err == (f"hyperkit: error: --base {other}: its training run was made with other settings (seed: 3 there, "
                   "0 here; train.val_every: 1 there, 2 here); ablate with its settings (--seed 3 and a --profile "
                   "YAML with its settings) or leave --base out")
    assert "remove" not in err and not (tmp_path / "abl").exists()
