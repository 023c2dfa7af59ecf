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
import torch
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


def namespace(code: str) -> dict:
    """Exec a solution alone, printing nowhere, and return the names it defined."""
    names = {"__MODULE__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, names)
    return names


RATES = {"drop_rate_emb": 0.15, "drop_rate_attn": 0.25, "drop_rate_shortcut": 0.35}
PLACES = {"drop_emb": "drop_rate_emb", "att.dropout": "drop_rate_attn",
          "drop_shortcut": "drop_rate_shortcut"}  # where a dropout sits -> its rate


def check_dropout_rates(code: str) -> None:
    """The model 4.3's solution builds: every dropout layer has the rate of the place it
    sits, and the weights are those GPTModel draws from the same seed."""
    build = namespace(code)["gpt_with_dropout_rates"]
    cfg = {"vocab_size": 50, "context_length": 6, "emb_dim": 8, "n_heads": 2,
           "n_layers": 3, "qkv_bias": False, **RATES}
    torch.manual_seed(123)
    model = build(cfg)
    seen = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Dropout):
            place = next(p for p in PLACES if name == p or name.endswith("." + p))
            assert module.p == RATES[PLACES[place]], (name, module.p)
            seen.append(place)
    assert seen.count("drop_emb") == 1
    assert seen.count("att.dropout") == seen.count("drop_shortcut") == 3
    plain = {k: v for k, v in cfg.items() if not k.startswith("drop_rate")}
    torch.manual_seed(123)
    reference = model_module.GPTModel(plain).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


def test_solution_4_3_gives_each_place_its_own_rate(found):
    (block,) = found["4.3"]
    check_dropout_rates(block.code)


@pytest.mark.parametrize("place, wrong", [
    ("drop_rate_emb", "drop_rate_attn"),
    ("drop_rate_attn", "drop_rate_shortcut"),
    ("drop_rate_shortcut", "drop_rate_emb"),
])
def test_a_wrong_rate_at_any_place_fails_solution_4_3(found, place, wrong):
    """One place given another place's rate: the printout no longer matches the page,
    and the check of the rates fails."""
    (block,) = found["4.3"]
    right = f'cfg["{place}"]'
    assert block.code.count(right) == 1  # the mutation below really changes the code
    broken = block.code.replace(right, f'cfg["{wrong}"]')
    assert run(broken) != block.expected_output
    with pytest.raises(AssertionError):
        check_dropout_rates(broken)
