"""The real-data commands the README and docs/reproducing.md print would start.

A paper preset on a real dataset refuses to run until every option its paper started
from is a file (:func:`methods.manifest.check_starting_points`); an example that leaves
one out would be refused on a user's first try (the README's tcar, meaci and tpclip
examples did). Each printed ``cvbench run`` on a real dataset is resolved as the command
resolves it (``configs/<method>/<dataset>.yaml``, then its flags) and checked.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cvbench.configs import RunLayer, resolve
from methods.manifest import check_starting_points
from methods.registry import list_methods

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/reproducing.md")
METHODS = set(list_methods())
REAL = {"ucf101", "hmdb51", "kinetics400", "ssv2"}


def printed_runs(text: str) -> list[str]:
    """Every ``cvbench run ...`` the text prints: code-block lines (with their ``\\``
    continuations) and inline code spans."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = re.findall(r"^\s*(cvbench run [^\n#]*)", joined, flags=re.MULTILINE)
    commands += re.findall(r"`(cvbench run [^`]+)`", joined)
    return [c.strip() for c in commands]


def real_runs() -> list[tuple[str, str]]:
    found = []
    for name in DOCS:
        for command in printed_runs((ROOT / name).read_text()):
            words = shlex.split(command.replace("<", "").replace(">", ""))
            flags = dict(zip(words, [*words[1:], ""], strict=True))
            # real datasets only; "--method M" and "--dataset D" are templates
            if flags.get("--dataset", "synthetic") in REAL and flags["--method"] in METHODS:
                found.append((name, command))
    return found


RUNS = real_runs()


def test_the_docs_print_real_data_commands() -> None:
    assert len(RUNS) >= 10, RUNS


@pytest.mark.parametrize(("doc", "command"), RUNS, ids=[f"{d}:{c[:60]}" for d, c in RUNS])
def test_a_printed_command_names_every_starting_point(doc: str, command: str) -> None:
    words = shlex.split(command.replace("<", "").replace(">", ""))
    method = words[words.index("--method") + 1]
    dataset = words[words.index("--dataset") + 1]
    preset = words[words.index("--preset") + 1] if "--preset" in words else None
    sets = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "--set")
    settings = resolve(method, dataset, flags=RunLayer(preset=preset, config=sets))
    check_starting_points(method, settings.preset, dataset, settings.config)
