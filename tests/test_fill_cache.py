"""Cases preprocessed side by side (:func:`hyperkit.data.preprocess.fill_cache`, ``train(workers=...)``): the cache
holds the same arrays however many cases were preprocessed at once, and so every bank and training is the same."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperkit.config import load_profile
from hyperkit.data import preprocess as pp
from hyperkit.data.bank import TaskBank
from hyperkit.data.layouts import CaseData, discover_datasets
from hyperkit.data.sample import write_sample_msd, write_sample_nnunet, write_sample_totalseg
from hyperkit.data import bank

CFG = load_profile("quick", {"data": {"patch_size": 16}})


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    write_sample_msd(data, "Task01_BrainTumour", n_cases=3, channels=("FLAIR", "T1w"), labels=("edema", "tumour"))
    write_sample_nnunet(data, n_cases=3)
    write_sample_totalseg(data, n_cases=5, structures=("aorta", "kidney_left", "sternum"))
    return data


def _cache(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for f in sorted(folder.glob("*.npz")):
        with np.load(f) as z:
            out[f.name] = {k: z[k] for k in z.files}
    return out


def test_cases_preprocessed_side_by_side_are_the_bytes_of_one_after_the_other(root: Path, tmp_path: Path) -> None:
    dcfg = pp.DataConfig.from_config(CFG)
    counts = {}
    for workers in (1, 2):
        for ds in discover_datasets(root):
            counts[(workers, ds.name)] = pp.fill_cache(ds, [c.case_id for c in ds.cases], dcfg,
                                                       tmp_path / f"w{workers}", workers)
    assert counts[(1, "TotalSegmentator")] == counts[(2, "TotalSegmentator")] == 5
    one, two = _cache(tmp_path / "w1"), _cache(tmp_path / "w2")
    assert len(one) == 11 and one.keys() == two.keys()  # 3 + 3 + 5 cases: two-channel MRI and nnU-Net, CT
    for name in one:
        assert one[name].keys() == two[name].keys()
        for k in one[name]:
            assert one[name][k].dtype == two[name][k].dtype and np.array_equal(one[name][k], two[name][k]), (name, k)
    ds = discover_datasets(root)[0]
    assert pp.fill_cache(ds, [c.case_id for c in ds.cases], dcfg, tmp_path / "w2", 2) == 0  # all cached: nothing
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        pp.fill_cache(ds, [], dcfg, tmp_path / "w2", 0)


def _denormal_case(channels: int = 1) -> CaseData:
    """An MRI case whose background holds denormal float32 values, as resampling leaves near 0."""
    image = np.zeros((channels, 6, 6, 6), dtype=np.float32)
    image[:, 1:5, 1:5, 1:5] = np.linspace(1, 100, 64, dtype=np.float32).reshape(4, 4, 4)
    image[:, 0] = np.uint32(0x000B_2A00).view(np.float32)  # a denormal (about 1e-39), written as bits: a thread
    # that flushes denormals (one an earlier test trained in) would turn an assigned 1e-39 into 0
    label = np.zeros((6, 6, 6), dtype=np.int32)
    label[2:4, 2:4, 2:4] = 1
    return CaseData("c0", image, label, np.diag([2.0, 2.0, 2.0, 1.0]), (2.0, 2.0, 2.0), frozenset({1}))


def _bits(x: np.ndarray) -> np.ndarray:
    """float32 values as their bits: compared bit for bit, also in a thread that reads denormals as 0."""
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def _denormal(x: np.ndarray) -> np.ndarray:
    bits = _bits(x)
    return bits[((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)]


@contextlib.contextmanager
def _flushing():
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)  # a process starts without


def test_preprocessing_keeps_denormals_in_a_thread_that_flushes_them(monkeypatch: pytest.MonkeyPatch, root: Path,
                                                                     tmp_path: Path) -> None:
    """Training, evaluation and the side-by-side pools flush denormal floats to zero; preprocessing must not, or a
    cached case depends on what its thread computed before (a phantom brain MRI's normalised intensities moved by
    7e-44): resampling and normalisation compute the same numbers in a flushing thread, in the calling thread and
    in the pool of :func:`fill_cache`, and leave the thread's setting as it was."""
    dcfg = pp.DataConfig.from_config(CFG)
    case = _denormal_case()
    plain = pp.resample_case(case, 1.0)
    assert _denormal(plain.image).size  # denormals to keep
    normal = pp.normalise_channel(plain.image[0], "FLAIR", dcfg)
    assert _denormal(normal).size
    with _flushing():
        flushed = pp.resample_case(case, 1.0)
        assert np.array_equal(_bits(flushed.image), _bits(plain.image))
        assert np.array_equal(_bits(pp.normalise_channel(flushed.image[0], "FLAIR", dcfg)), _bits(normal))
        assert float(torch.tensor([1e-39]) * 1.0) == 0.0  # the thread's setting restored
    ds = next(d for d in discover_datasets(root) if d.name == "Task01_BrainTumour")  # its cases: the denormal case
    assert list(ds.channels) == ["FLAIR", "T1w"] and len(ds.cases) == 3
    monkeypatch.setattr(type(ds), "load_case", lambda self, cid: _denormal_case(2))
    res = pp.resample_case(_denormal_case(2), dcfg.spacing)
    want = np.stack([pp.normalise_channel(res.image[c], ch, dcfg) for c, ch in enumerate(ds.channels)])
    for name, workers in (("serial", 1), ("pool", 2)):
        with _flushing():
            assert pp.fill_cache(ds, [c.case_id for c in ds.cases], dcfg, tmp_path / name, workers) == 3
        cached = _cache(tmp_path / name)
        assert len(cached) == 3 and all(np.array_equal(_bits(a["image"]), _bits(want)) for a in cached.values()), name


_WORKERS_MADE_FLUSHING = """
import numpy as np, torch
from hyperkit.data import preprocess as pp
from hyperkit.data.layouts import CaseData
bits = lambda x: np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
image = np.zeros((1, 64, 64, 64), np.float32)
image[0, 8:56, 8:56, 8:56] = np.linspace(1, 100, 48 ** 3, dtype=np.float32).reshape(48, 48, 48)
image[0, :, :, :6] = np.uint32(0x000B2A00).view(np.float32)
case = CaseData("c", image, np.zeros((64, 64, 64), np.int32), np.eye(4), (1.0,) * 3, frozenset())
torch.set_num_threads(1)
want = pp.resample_case(case, 1.5).image
torch.set_flush_denormal(True)
torch.set_num_threads(2)
torch.ones(4_000_000).mul_(1.0)  # torch's worker threads are made now, while the process flushes
with pp.denormals_kept():
    shared = pp.resample_case(case, 1.5).image
with pp.denormals_kept(alone=True):
    alone = pp.resample_case(case, 1.5).image
denormal = int((((bits(want) & 0x7F800000) == 0) & (bits(want) != 0)).sum())
differ = [int((bits(x) != bits(want)).sum()) for x in (shared, alone)]
print(denormal, *differ, torch.get_num_threads())
"""


def test_preprocessing_alone_keeps_denormals_that_torchs_worker_threads_would_flush() -> None:
    """torch's worker threads keep the denormal setting they were made with: in a process that flushes before its
    first parallel operation (as ``hyperkit train`` does), a resampling at two threads lost the denormals of the
    worker thread's half even with the calling thread's flushing off; ``alone`` (what :func:`preprocess_case` uses)
    computes them all, and restores the thread count. A fresh interpreter, so that the worker threads are made
    while flushing."""
    env = {**os.environ, "PYTHONPATH": str(Path(pp.__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", _WORKERS_MADE_FLUSHING], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    denormal, shared, alone, threads = (int(v) for v in out)
    assert denormal > 1000 and shared > 0  # the hazard is real here: the worker's share was flushed
    assert alone == 0 and threads == 2


def test_a_bank_built_with_workers_is_the_bank_built_without(root: Path, tmp_path: Path) -> None:
    datasets = discover_datasets(root)
    a = TaskBank.from_datasets(datasets, "train", CFG, cache_dir=tmp_path / "a", margin=4)
    b = TaskBank.from_datasets(datasets, "train", CFG, cache_dir=tmp_path / "b", margin=4, workers=2)
    assert a.task_ids == b.task_ids and a.case_ids == b.case_ids
    for t in a.task_ids:
        assert torch.equal(a.images[t], b.images[t]) and torch.equal(a.masks[t], b.masks[t])
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        TaskBank.from_datasets(datasets, "train", CFG, cache_dir=tmp_path / "a", margin=4, workers=0)


def test_the_default_number_of_workers_follows_the_cores_and_the_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bank.preprocess_workers(3) == 3
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        bank.preprocess_workers(0)
    monkeypatch.setattr(bank.os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    monkeypatch.setattr(bank, "available_memory", lambda: 40 * 2 ** 30)
    assert bank.preprocess_workers(None) == 10  # 4 GiB each
    monkeypatch.setattr(bank, "available_memory", lambda: 2 ** 30)
    assert bank.preprocess_workers(None) == 1  # at least one
    monkeypatch.setattr(bank, "available_memory", lambda: None)
    assert bank.preprocess_workers(None) == 16  # memory unknown: one per core
