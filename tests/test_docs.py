"""The kit's documents name files, commands and options that exist.

README.md, docs/design.md, data/README.md, BENCHMARKS.md and the notebooks' text cells quote paths
(`` `hyperkit/profiles/quick.yaml` ``), ``hyperkit`` commands with their options and the benchmark
scripts' command lines; a renamed file or option leaves them stale without failing anything else.
Paths under a run folder (``runs/``, ``OUT``, ``RUN``) or outside the repository are not checked.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from hyperkit.cli import build_parser
from hyperkit.reproduce import NOTEBOOK_PATTERN

REPO = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/design.md", "data/README.md", "BENCHMARKS.md"]
NOTEBOOKS = sorted((REPO / "notebooks").glob(NOTEBOOK_PATTERN))
#: a quoted path: one folder at least and a file suffix
PATH = re.compile(r"`([\w.-]+(?:/[\w.-]+)+\.(?:py|ya?ml|md|json|ipynb|sh|txt|pt|toml|cfg))`")
NOT_CHECKED = ("runs/", "OUT", "RUN", "/", "~", "../")
COMMAND = re.compile(r"(?:^|[`\s(])hyperkit (\w+)([^`|\n]*)")
SCRIPT = re.compile(r"python (benchmarks/\w+\.py)([^`|\n]*)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")


def _texts() -> list[tuple[str, str]]:
    """(name, text) of every document and of each notebook's markdown cells."""
    out = [(d, (REPO / d).read_text()) for d in DOCS if (REPO / d).exists()]
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        out.append((nb.name, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")))
    return out


TEXTS = _texts()


@lru_cache(maxsize=None)
def _commands() -> dict[str, frozenset[str]]:
    """Each ``hyperkit`` command -> the option strings it accepts (the whole parser built once)."""
    return {name: frozenset(parser._option_string_actions) for name, parser in build_parser("*").commands.items()}


def _options(command: str) -> frozenset[str] | None:
    """The option strings ``hyperkit command`` accepts; None for a word that is not a command."""
    return _commands().get(command)


def test_the_documents_are_there() -> None:
    assert {name for name, _ in TEXTS} >= {"README.md", "docs/design.md", "BENCHMARKS.md"}
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("name, text", TEXTS, ids=[n for n, _ in TEXTS])
def test_quoted_paths_exist(name: str, text: str) -> None:
    """A quoted path is a file or folder of the repository (or of the package, or a profile)."""
    missing = sorted({p for p in PATH.findall(text) if not p.startswith(NOT_CHECKED)
                      and not any((REPO / base / p).exists() for base in ("", "hyperkit", "hyperkit/profiles"))})
    assert not missing, f"{name} quotes paths that do not exist: {missing}"


@pytest.mark.parametrize("name, text", TEXTS, ids=[n for n, _ in TEXTS])
def test_quoted_hyperkit_options_exist(name: str, text: str) -> None:
    """``hyperkit CMD ... --option`` uses options that ``CMD`` accepts."""
    wrong = sorted({(cmd, opt) for cmd, rest in COMMAND.findall(text) if _options(cmd) is not None
                    for opt in OPTION.findall(rest) if opt not in _options(cmd)})  # type: ignore[operator]
    assert not wrong, f"{name} quotes options the command does not have: {wrong}"


@pytest.mark.parametrize("name, text", TEXTS, ids=[n for n, _ in TEXTS])
def test_quoted_benchmark_command_lines_exist(name: str, text: str) -> None:
    """``python benchmarks/X.py ... --option``: the script exists and declares the option."""
    wrong = []
    for script, rest in SCRIPT.findall(text):
        path = REPO / script
        if not path.exists():
            wrong.append((script, "no such script"))
            continue
        source = path.read_text()
        wrong += [(script, opt) for opt in OPTION.findall(rest)
                  if f'"{opt}"' not in source and f"'{opt}'" not in source]
    assert not wrong, f"{name} quotes benchmark command lines that do not run: {sorted(set(wrong))}"


@lru_cache(maxsize=None)
def _profiles() -> tuple[dict, ...]:
    from hyperkit.config import load_profile

    return load_profile("quick"), load_profile("paper")


def _setting_exists(key: str) -> bool:
    """``train.bce_weight`` is a setting of the quick or the paper profile."""
    for cfg in _profiles():
        node: object = cfg
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is not KeyError:
            return True
    return False


def _settings_quoted(text: str) -> set[str]:
    """The keys of ``--set KEY=VALUE`` and of quoted settings (`` `train.bce_weight` ``, `` `data.spacing: 4` ``)."""
    sections = "|".join(sorted({k for cfg in _profiles() for k in cfg}))
    quoted = re.findall(rf"`((?:{sections})(?:\.\w+)+)(?::[^`]*)?`", text)
    return (set(re.findall(r"--set[ =]([a-z_]+(?:\.\w+)+)=", text)) | set(quoted)) - {"section.key"}


@pytest.mark.parametrize("name, text", TEXTS, ids=[n for n, _ in TEXTS])
def test_quoted_settings_exist(name: str, text: str) -> None:
    """A setting named in the text (``--set train.patience=100``, `` `evaluate.adapt_lr` ``) is one of the
    profiles' settings (``section.key`` is the documents' placeholder)."""
    wrong = sorted(k for k in _settings_quoted(text) if not _setting_exists(k))
    assert not wrong, f"{name} names settings that no profile has: {wrong}"


def test_the_checks_find_what_they_look_for() -> None:
    """The patterns match the forms the documents use (else the tests above would pass on anything)."""
    text = ("`hyperkit/profiles/quick.yaml` `runs/quick/best.pt` `hyperkit train --profile quick --bogus` "
            "`python benchmarks/recipe_study.py --out X`")
    assert PATH.findall(text) == ["hyperkit/profiles/quick.yaml", "runs/quick/best.pt"]
    assert COMMAND.findall(text)[0] == ("train", " --profile quick --bogus")
    assert [o for o in OPTION.findall(COMMAND.findall(text)[0][1]) if o not in (_options("train") or ())] == ["--bogus"]
    assert SCRIPT.findall(text) == [("benchmarks/recipe_study.py", " --out X")]
    settings = _settings_quoted("`hyperkit train --set train.patience=100 --set=train.bogus=1` `evaluate.adapt_lr` "
                                "`data.spacing: 4` `section.key`")
    assert settings == {"train.patience", "train.bogus", "evaluate.adapt_lr", "data.spacing"}
    assert [k for k in sorted(settings) if not _setting_exists(k)] == ["train.bogus"]
