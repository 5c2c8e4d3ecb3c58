"""Reading hypernetwork checkpoints back, checked where the run and CLI tests cannot fail (found by the checkpoint
mutation audit): the stored kind string, map_location, what a refused file is named, the weights and the eval
mode of load_hypernet, its one config validator, and the profile comparison of both sections and its message."""

from __future__ import annotations

import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.errors import ConfigError, HyperkitError
from hyperkit.files import save_atomic
from hyperkit.model.hypernet import HyperUNet
from hyperkit.training.checkpoint import load_checkpoint, load_hypernet
from tiny import TINY_MODEL

#: the kind every checkpoint of the kit stores: runs written before any change must keep loading
KIND = "hyperkit/hyperunet-checkpoint/v1"


def _cfg(data=None, model=None) -> dict:
    return load_profile("quick", {"data": {"patch_size": 16, **(data or {})}, "model": {**TINY_MODEL, **(model or {})}})


def _save(path, cfg: dict, **extra):
    torch.manual_seed(0)
    hyper = HyperUNet.from_config(_cfg()["model"])
    state = {k: v + 1 if v.is_floating_point() else v for k, v in hyper.state_dict().items()}  # not an init
    return save_atomic({"kind": KIND, "model": state, "state": {}, "config": cfg, **extra}, path)


def test_load_checkpoint_reads_the_v1_kind_to_the_asked_device(tmp_path):
    path = save_atomic({"kind": KIND, "value": torch.tensor([1.5])}, tmp_path / "best.pt")
    assert load_checkpoint(path)["value"].tolist() == [1.5]
    assert load_checkpoint(path, map_location="meta")["value"].is_meta


@pytest.mark.parametrize("obj, words, hint", [
    ([torch.zeros(1)], "(kind 'list')", False),
    ({"kind": "hyperkit/other/v1"}, "(kind 'hyperkit/other/v1')", False),
    ({"kind": "hyperkit/unet-model/v1"}, "(kind 'hyperkit/unet-model/v1'); it is a U-Net model file", True),
])
def test_a_refused_file_names_its_kind_and_only_a_model_file_gets_the_segment_hint(tmp_path, obj, words, hint):
    path = save_atomic(obj, tmp_path / "x.pt")
    with pytest.raises(HyperkitError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: not a hyperkit hypernetwork checkpoint ") and words in msg
    assert ("`hyperkit segment` reads" in msg) == hint and msg.endswith("give the best.pt or last.pt of a "
                                                                        "`hyperkit train` run")


def test_load_hypernet_returns_the_saved_weights_in_eval_mode(tmp_path):
    cfg = _cfg()
    path = _save(tmp_path / "best.pt", cfg)
    model, got = load_hypernet(path)
    assert got == cfg and not model.training
    saved = torch.load(path, weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    del saved[next(iter(saved))]  # a checkpoint that lacks a weight is refused, not half loaded
    with pytest.raises(RuntimeError, match="Missing key"):
        load_hypernet(save_atomic({"kind": KIND, "model": saved, "state": {}, "config": cfg}, tmp_path / "cut.pt"))


def test_load_hypernet_reads_the_config_through_the_validator(tmp_path):
    with pytest.raises(ConfigError, match="junk"):
        load_hypernet(_save(tmp_path / "best.pt", {**_cfg(), "junk": 1}))


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("base: quick\ndata:\n  patch_size: 16\nmodel:\n" + "".join(f"  {k}: {v}\n"
                                                                                for k, v in TINY_MODEL.items()))
    return str(path)


def test_the_profile_must_match_in_data_and_in_model(tmp_path, profile):
    model, cfg = load_hypernet(_save(tmp_path / "same.pt", _cfg()), profile)  # another name, same sections
    assert cfg["name"] == "quick" and not model.training
    for i, (data, model_kw, words) in enumerate([({"spacing": 3.0}, None, "data.spacing: checkpoint 3.0, profile 4.0"),
                                                 (None, {"hidden": 64}, "model.hidden: checkpoint 64, profile 32")]):
        path = _save(tmp_path / f"{i}.pt", _cfg(data, model_kw))
        with pytest.raises(ConfigError) as err:
            load_hypernet(path, profile)
        assert str(err.value) == f"{path}: trained with profile 'quick', not {profile!r} ({words})"


def test_a_key_the_checkpoint_lacks_differs_from_the_profile(tmp_path, profile):
    """A run recorded before ``data.placement`` existed was trained centred (the default), not offset (quick)."""
    cfg = _cfg()
    del cfg["data"]["placement"]
    with pytest.raises(ConfigError, match=r"data\.placement: checkpoint (None|'centred'), profile 'offset'"):
        load_hypernet(_save(tmp_path / "best.pt", cfg), profile)


def test_a_setting_added_since_the_checkpoint_compares_at_its_default(tmp_path, profile):
    """``data.max_offset`` and ``placement_seed`` came after ``placement``: a checkpoint without them was trained
    with their defaults (0.25, 0), which are quick's, so it loads against quick; one model key the same way."""
    cfg = _cfg()
    del cfg["data"]["max_offset"], cfg["data"]["placement_seed"], cfg["model"]["eval_seed"]
    model, got = load_hypernet(_save(tmp_path / "old.pt", cfg), profile)
    assert not model.training and "max_offset" not in got["data"]  # the record is returned as stored
    cfg["data"]["placement"] = "centred"  # ...but a lacking key is read at its default, not at the profile's
    with pytest.raises(ConfigError, match=r"\(data\.placement: checkpoint 'centred', profile 'offset'\)$"):
        load_hypernet(_save(tmp_path / "centred.pt", cfg), profile)


def test_the_profile_message_lists_three_differences_then_dots(tmp_path, profile):
    three = ("data.max_offset: checkpoint 0.1, profile 0.25; data.placement_seed: checkpoint 1, profile 0; "
             "data.spacing: checkpoint 3.0, profile 4.0")
    data = {"spacing": 3.0, "max_offset": 0.1, "placement_seed": 1}
    for model_kw, tail in [(None, ")"), ({"eval_seed": 1}, " ...)")]:
        path = _save(tmp_path / "best.pt", _cfg(data, model_kw))
        with pytest.raises(ConfigError) as err:
            load_hypernet(path, profile)
        assert str(err.value).endswith(f"({three}{tail}")


def test_load_hypernet_reads_on_the_cpu_and_moves_the_model(tmp_path, monkeypatch):
    """map_location is where the model goes (the file is read on the CPU); a bad device is named as such."""
    import hyperkit.training.checkpoint as ck

    seen = []
    real = ck.read_torch_file
    monkeypatch.setattr(ck, "read_torch_file",
                        lambda path, what, map_location="cpu": seen.append(map_location) or real(path, what))
    path = _save(tmp_path / "best.pt", _cfg())
    model, _ = load_hypernet(path, map_location="meta")
    assert seen == ["cpu"] and {p.device.type for p in model.parameters()} == {"meta"} and not model.training
    with pytest.raises(HyperkitError, match="map_location 'gpu0' is not a torch device"):
        load_hypernet(path, map_location="gpu0")
