"""The standalone U-Net model file, checked where the generate/segment round trips cannot fail (found by the
model_file mutation audit): what save_unet stores (plain types, CPU weights, every data field, channel, task,
source, adaptation), the modality check, and what load_unet refuses and how its messages name the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hyperkit.data.preprocess import DataConfig
from hyperkit.errors import HyperkitError
from hyperkit.files import save_atomic
from hyperkit.inference.model_file import MODEL_KIND, file_kind, load_unet, save_unet
from hyperkit.model.unet import UNet3D


def _unet() -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(base_width=8)


def _save(path, **kw) -> Path:
    args = dict(data=DataConfig(spacing=4.0, patch_size=16), channel="T1", modality="MRI", profile="quick",
                task=None, source={"checkpoint": Path("/x/best.pt"), "label": 2, "none": None})
    return save_unet(_unet(), path, **{**args, **kw})


def test_the_file_holds_plain_values_only(tmp_path):
    path = _save(tmp_path / "m.pt", adaptation={"lr": 0.05, "shape": (1, 2), "nested": {3: Path("a")}},
                 support={"box_mm": ((0.0, 1.0), (2.0, 3.0)), "modality": "CT"})
    obj = torch.load(path, weights_only=True)
    assert obj["kind"] == MODEL_KIND == "hyperkit/unet-model/v1"
    assert obj["data"] == {"spacing": 4.0, "patch_size": 16, "ct_clip": [float(v) for v in DataConfig().ct_clip],
                           "mri_percentiles": [float(v) for v in DataConfig().mri_percentiles]}
    assert type(obj["data"]["spacing"]) is float and type(obj["data"]["ct_clip"]) is list
    assert obj["channel"] == "T1" and obj["modality"] == "MRI" and obj["profile"] == "quick" and obj["task"] is None
    assert obj["source"] == {"checkpoint": "/x/best.pt", "label": "2", "none": None}
    assert obj["adaptation"] == {"lr": 0.05, "shape": [1, 2], "nested": {"3": "a"}}
    assert obj["support"]["box_mm"] == [[0.0, 1.0], [2.0, 3.0]]
    assert all(v.device.type == "cpu" for v in obj["state_dict"].values())
    assert _save(tmp_path / "n.pt", task=7) and torch.load(tmp_path / "n.pt", weights_only=True)["task"] == "7"
    assert torch.load(tmp_path / "n.pt", weights_only=True)["adaptation"] is None


def test_save_stores_weights_on_the_cpu_from_any_device(tmp_path):
    unet = _unet().to("meta")  # a device that is not the CPU: copying to the CPU must fail, not store meta tensors
    with pytest.raises(NotImplementedError):
        save_unet(unet, tmp_path / "m.pt", data=DataConfig(), channel="CT", modality="CT", profile="quick",
                  task=None, source={})


def test_save_refuses_an_unknown_modality_and_normalises_case(tmp_path):
    with pytest.raises(ValueError):
        _save(tmp_path / "m.pt", modality="PET")
    assert not (tmp_path / "m.pt").exists()
    assert torch.load(_save(tmp_path / "c.pt", modality="ct"), weights_only=True)["modality"] == "CT"


def test_load_returns_the_saved_weights_in_eval_mode(tmp_path):
    path = _save(tmp_path / "m.pt")
    unet, meta = load_unet(path)
    assert not unet.training and "state_dict" not in meta and meta["channel"] == "T1"
    assert all(torch.equal(v, _unet().state_dict()[k]) for k, v in unet.state_dict().items())


def _obj(tmp_path, **change):
    obj = torch.load(_save(tmp_path / "m.pt"), weights_only=True)
    obj.update(change)
    return obj


@pytest.mark.parametrize("drop", ["unet_config", "state_dict", "data", "channel", "modality"])
def test_a_file_without_a_needed_key_is_refused_by_name(tmp_path, drop):
    obj = _obj(tmp_path)
    del obj[drop]
    path = save_atomic(obj, tmp_path / "x.pt")
    with pytest.raises(HyperkitError, match=rf"x\.pt: model file lacks key\(s\) \['{drop}'\]"):
        load_unet(path)


@pytest.mark.parametrize("obj, words", [
    ([torch.zeros(1)], "(a list, expected kind 'hyperkit/unet-model/v1')"),
    ({"weights": torch.zeros(1)}, "(kind None, expected kind 'hyperkit/unet-model/v1')"),
])
def test_a_file_of_no_kind_is_refused(tmp_path, obj, words):
    path = save_atomic(obj, tmp_path / "x.pt")
    with pytest.raises(HyperkitError) as err:
        load_unet(path)
    assert str(err.value) == f"{path}: not a hyperkit U-Net model file {words}"
    assert file_kind(path) is None


def test_file_kind(tmp_path):
    assert file_kind(_save(tmp_path / "m.pt")) == MODEL_KIND
    assert file_kind(tmp_path / "missing.pt") is None
    assert file_kind(save_atomic({"kind": 3}, tmp_path / "k.pt")) is None


@pytest.mark.parametrize("change, words", [
    ({"unet_config": {"base_width": 8, "colour": 1}}, "invalid U-Net config"),
    ({"unet_config": {"base_width": 12}}, "invalid U-Net config"),
    ({"state_dict": [1, 2]}, "(state_dict is a list, not a dict)"),
    ({"state_dict": None}, "(state_dict is a NoneType, not a dict)"),
])
def test_a_bad_config_or_state_is_one_kit_error(tmp_path, change, words):
    path = save_atomic(_obj(tmp_path, **change), tmp_path / "x.pt")
    with pytest.raises(HyperkitError) as err:
        load_unet(path)
    assert str(err.value).startswith(f"{path}: ") and words in str(err.value)


def test_the_mismatch_names_missing_and_unexpected_tensors(tmp_path):
    obj = _obj(tmp_path)
    state = obj["state_dict"]
    names = sorted(state)
    for k in names[:3]:
        del state[k]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(HyperkitError) as err:
        load_unet(save_atomic(obj, tmp_path / "x.pt"))
    msg = str(err.value)
    assert f"(3 missing: {names[0]}, {names[1]} ...; 1 unexpected: extra.weight)" in msg
    del state[names[3]]
    del state["extra.weight"]
    with pytest.raises(HyperkitError) as err:
        load_unet(save_atomic(obj, tmp_path / "y.pt"))
    assert f"(4 missing: {names[0]}, {names[1]} ...)" in str(err.value)
    state.update({k: torch.zeros(1) for k in names[:4]})
    del state[names[4]]
    with pytest.raises(HyperkitError) as err:
        load_unet(save_atomic(obj, tmp_path / "z.pt"))
    assert f"(1 missing: {names[4]}; 4 wrong shape: " in str(err.value)


def test_a_file_of_another_modality_is_refused_by_name(tmp_path):
    """A file whose modality is neither CT nor MRI would skip segment's modality check: refused on loading."""
    path = save_atomic(_obj(tmp_path, modality="PET"), tmp_path / "x.pt")
    with pytest.raises(HyperkitError,
                       match=r"x\.pt: the model file's modality must be one of \['CT', 'MRI'\], got 'PET'"):
        load_unet(path)


def test_map_location_is_where_the_unet_goes_the_file_is_read_on_the_cpu(tmp_path, monkeypatch):
    """The file is read on the CPU and the built U-Net moved: 'meta' gives a meta U-Net (it failed with 'the
    stored weights do not fit' when the file itself was read to meta); a bad device is named as such."""
    import hyperkit.inference.model_file as mf

    seen = []
    real = mf.read_torch_file
    monkeypatch.setattr(mf, "read_torch_file",
                        lambda path, what, map_location="cpu": seen.append(map_location) or real(path, what))
    path = _save(tmp_path / "m.pt")
    unet, meta = load_unet(path, map_location="meta")
    assert seen == ["cpu"] and meta["modality"] == "MRI"
    assert {p.device.type for p in unet.parameters()} == {"meta"} and not unet.training
    with pytest.raises(HyperkitError, match="map_location 'gpu0' is not a torch device"):
        load_unet(path, map_location="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(HyperkitError, match="map_location 'cuda': CUDA is not available"):
            load_unet(path, map_location="cuda")
