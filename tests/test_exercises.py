"""The book's exercises 4.1-4.3 sit at the ends of chapters 7 and 8, each solution in a
collapsible block inside a collapsible exercise (material's `???`). Their code is
indented there, so these tests check that pytest-codeblocks still finds each solution as
a Python block with its expected output, and that a solution which stops printing what
the page shows fails.

The suite runs every page block through pytest-codeblocks; `run` below does what it does
with one (exec in a fresh namespace, compare the whole stdout), so that a broken solution
can be shown to fail without running a whole page.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest
from pytest_codeblocks import extract_from_file
from torch import nn

import llm_from_scratch.model as model_module

CHAPTERS = Path(__file__).resolve().parents[1] / "docs" / "chapters"
EXERCISE = re.compile(r'^(?P<indent> *)\?\?\?\+? example "Exercise (?P<number>4\.\d)')
SOLUTION = re.compile(r'^(?P<indent> *)\?\?\?\+? success "Solution"')


def solutions(page: str) -> dict:
    """The code blocks pytest-codeblocks collects inside a solution, by exercise number."""
    lines = (CHAPTERS / page).read_text().splitlines()
    found = {}
    for block in extract_from_file(CHAPTERS / page):
        # Find the solution and the exercise whose bodies (deeper indents) hold the fence.
        fence_indent = len(lines[block.lineno - 1]) - len(lines[block.lineno - 1].lstrip())
        solution = exercise = None
        for line in reversed(lines[: block.lineno - 1]):
            indent = len(line) - len(line.lstrip())
            if not line.strip() or indent >= fence_indent:
                continue
            if solution is None and SOLUTION.match(line):
                solution, fence_indent = line, indent
            elif solution is not None and (match := EXERCISE.match(line)):
                exercise = match["number"]
                break
            else:
                break  # the fence is not inside a solution
        if exercise is not None:
            assert block.syntax == "python", f"{page}:{block.lineno}: a solution the suite skips"
            assert block.expected_output, f"{page}:{block.lineno}: a solution shows no output"
            found.setdefault(exercise, []).append(block)
    return found


def run(code: str) -> str:
    """What pytest-codeblocks does with a block: exec it alone, return what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, {"__MODULE__": "__main__"})
    return printed.getvalue()


@pytest.fixture(scope="module")
def found():
    return {**solutions("07-transformer-block.md"), **solutions("08-gpt-model.md")}


def test_each_exercise_has_one_solution_that_the_suite_runs(found):
    assert solutions("07-transformer-block.md").keys() == {"4.1"}
    assert solutions("08-gpt-model.md").keys() == {"4.2", "4.3"}
    assert all(len(blocks) == 1 for blocks in found.values()), found


@pytest.mark.parametrize("number", ["4.1", "4.3"])  # 4.2 runs with its page
def test_a_solution_prints_what_its_page_shows(found, number):
    (block,) = found[number]
    assert run(block.code) == block.expected_output


def test_a_broken_package_fails_solution_4_1(found, monkeypatch):
    """A feed-forward network that widens 2x instead of 4x changes what 4.1 prints."""

    class NarrowFeedForward(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            d = model_module.as_config(cfg).emb_dim
            self.layers = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    (block,) = found["4.1"]
    monkeypatch.setattr(model_module, "FeedForward", NarrowFeedForward)
    printed = run(block.code)
    assert printed != block.expected_output
    assert "feed-forward / attention: 1.00" in printed


def test_a_broken_solution_4_3_fails(found):
    """Attention given the embedding rate: the printout no longer matches the page."""
    (block,) = found["4.3"]
    right = "block.att.dropout = cfg.drop_rate_attn"
    assert block.code.count(right) == 1  # the mutation below really changes the code
    printed = run(block.code.replace(right, "block.att.dropout = cfg.drop_rate_emb"))
    assert printed != block.expected_output
    assert "trf_blocks.0.att            0.1  (attention weights)" in printed
