"""``hyperkit/files.py``: atomic writes, safe torch reads and the readers of files written row by row."""

from __future__ import annotations

import csv
import io
import pickle
import re
from pathlib import Path

import pytest
import torch

from hyperkit.errors import HyperkitError
from hyperkit.files import (appended_lines, read_jsonl, read_torch_file, save_atomic, sha256_file,
                            write_atomic, write_csv_atomic, write_text_atomic)


# ------------------------------------------------------------------------------ atomic writes
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "deep" / "er" / "a.txt", "old")
    assert path.read_text() == "old"

    def half(fh: io.BufferedWriter) -> None:
        fh.write(b"new, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half)
    assert path.read_text() == "old" and sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]
    with open(path) as reader:  # a reader of the old file keeps it whole: the new one replaces it, never overwrites it
        write_text_atomic(path, "new")
        assert reader.read() == "old" and path.read_text() == "new"


def test_write_csv_atomic_writes_the_header_and_rows_with_the_given_line_ends(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": "x,y"}, {"a": 2, "b": ""}]
    assert write_csv_atomic(tmp_path / "r.csv", ["a", "b"], rows).read_bytes() == b'a,b\r\n1,"x,y"\r\n2,\r\n'
    assert write_csv_atomic(tmp_path / "n.csv", ["a", "b"], rows, "\n").read_bytes() == b'a,b\n1,"x,y"\n2,\n'
    assert write_csv_atomic(tmp_path / "e.csv", ["a"], []).read_bytes() == b"a\r\n"


def test_sha256_of_a_file_larger_than_one_block(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 5000  # 1.22 MiB: two blocks
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------ torch files
def caught_message(path: Path) -> str:
    with pytest.raises(HyperkitError) as caught:
        read_torch_file(path, "checkpoint")
    return str(caught.value)


def test_read_torch_file_reads_tensors_and_names_what_it_cannot(tmp_path: Path) -> None:
    save_atomic({"w": torch.arange(3)}, tmp_path / "ok.pt")
    assert torch.equal(read_torch_file(tmp_path / "ok.pt", "checkpoint")["w"], torch.arange(3))
    with pytest.raises(FileNotFoundError, match="absent.pt: checkpoint not found"):
        read_torch_file(tmp_path / "absent.pt", "checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(HyperkitError, match=r"empty.pt: not a checkpoint \(an empty file\)"):
        read_torch_file(tmp_path / "empty.pt", "checkpoint")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(HyperkitError, match=r"text.pt: not a model file \(not a torch file\)"):
        read_torch_file(tmp_path / "text.pt", "model file")
    torch.save({"f": Path("x")}, tmp_path / "object.pt")  # needs more than tensors and containers
    with pytest.raises(HyperkitError, match="holding objects other than tensors") as caught:
        read_torch_file(tmp_path / "object.pt", "checkpoint")
    assert "weights_only=False" not in str(caught.value)  # never the advice to run the file's code
    whole = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    said = caught_message(tmp_path / "cut.pt")
    assert re.search(r"cut.pt: not a checkpoint \(a truncated or damaged torch file: \w+: ", said)
    detail = said.split("damaged torch file: ", 1)[1].split(": ", 1)[1]
    assert len(detail) <= 161 and "\n" not in detail  # torch's message, cut to 160 characters and a ")"
    # its first sentence only: the message was cut mid-sentence ("If you are seeing this error, there is a high)")
    assert detail.endswith(")") and ". " not in detail and "If you are seeing" not in detail
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps(object(), protocol=2))  # a legacy (non-zip) torch pickle
    with pytest.raises(HyperkitError, match="legacy.pt: not a checkpoint \\(a torch file holding objects other"):
        read_torch_file(tmp_path / "legacy.pt", "checkpoint")


# ------------------------------------------------------------------------------ row by row
def _rows(path: Path, **kw: bool) -> list[dict[str, str]]:
    return list(csv.DictReader(appended_lines(path, **kw)))


def test_a_row_is_split_only_at_line_breaks(tmp_path: Path) -> None:
    # str.splitlines also splits at \x0c, \x1c, \x85, \u2028 ...: a case id holding one became two rows
    cases = ["a\u2028b", "c\x0cd", "e\x1cf", "g\x85h", "quoted\r\nbreak"]
    path = write_csv_atomic(tmp_path / "r.csv", ["task", "case"], [{"task": "t", "case": c} for c in cases])
    assert [r["case"] for r in _rows(path, drop_cut_row=False)] == cases


@pytest.mark.parametrize("tail", ["t,cut", "t,whole\r"])  # cut inside the row, or between \r and \n
def test_a_cut_last_row_is_refused_or_dropped(tail: str, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"task,case\r\nt,one\r\n" + tail.encode())
    with pytest.raises(HyperkitError, match=r"r.csv: its last row \(line 3\) was cut short by an interrupted write; "
                                            r"resume it, or delete the line"):
        appended_lines(path, drop_cut_row=False, redo="resume it")
    with pytest.raises(HyperkitError, match=r"interrupted write; delete the line$"):
        appended_lines(path, drop_cut_row=False)
    assert _rows(path, drop_cut_row=True) == [{"task": "t", "case": "one"}]


def test_a_binary_file_given_as_a_table_is_named(tmp_path: Path) -> None:
    """``finetune --reference-from`` a binary file said only "'utf-8' codec can't decode byte 0x80 in position 64":
    the file is now named, with the byte where its text ends."""
    binary = tmp_path / "weights.csv"
    binary.write_bytes(b"task,method\n" + bytes(range(0x80, 0x90)) + b"\n")
    with pytest.raises(HyperkitError, match=r"weights\.csv: not a text file of rows \(byte 12 is not"):
        appended_lines(binary, drop_cut_row=False)


def test_a_header_alone_is_not_a_cut_row_but_a_lone_json_line_is(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(b"task,case")
    assert appended_lines(path, drop_cut_row=False) == ["task,case"]
    with pytest.raises(HyperkitError, match="line 1"):
        appended_lines(path, drop_cut_row=False, header=False)
    (tmp_path / "m.jsonl").write_bytes(b'{"episode": 0}\n\n{"episode": 1}\n{"episo')
    assert read_jsonl(tmp_path / "m.jsonl") == [{"episode": 0}, {"episode": 1}]
    (tmp_path / "one.jsonl").write_bytes(b'{"episode": 0}')
    assert read_jsonl(tmp_path / "one.jsonl") == [] and read_jsonl(tmp_path / "none.jsonl") == []


def test_two_threads_writing_one_path_at_once_each_rename_a_whole_file(tmp_path: Path) -> None:
    """The temporary name is per thread: with one name per process the second writer truncated the first one's
    temporary file mid-write, so the first renamed a mixed file (or found none to rename)."""
    import threading

    path, started = tmp_path / "f.bin", threading.Barrier(2)
    both_open, errors = threading.Barrier(2), []

    def writer(byte: bytes) -> None:
        def write(fh: io.BufferedWriter) -> None:
            both_open.wait(timeout=10)  # both temporary files are open before either writes
            fh.write(byte * 100_000)
        try:
            started.wait(timeout=10)
            write_atomic(path, write)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert path.read_bytes() in (b"a" * 100_000, b"b" * 100_000)
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
