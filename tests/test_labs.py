"""Every lab runs as a script, as a reader runs it with `python docs/labs/<name>.py`.

The labs run one after another in one Python process (each as `__main__`, with fresh
globals, matplotlib drawing off screen), so torch and matplotlib are imported once. The
site build runs each lab once more, in a fresh kernel process of its own.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_codeblocks import extract_from_file

LABS = Path(__file__).resolve().parents[1] / "docs" / "labs"
SEED_SCRIPTS = [
    "configuration", "tokenization_basics", "layer_normalization", "activation_functions",
    "feed_forward_network", "shortcut_connections", "transformer_block",
    "gpt_model_assembly", "text_generation",
]

RUN_ALL = """
import contextlib, io, json, runpy, sys, traceback
import matplotlib.pyplot as plt
results = {}
for path in sys.argv[1:]:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(path, run_name="__main__")
        results[path] = {"error": None, "stdout": printed.getvalue()}
    except BaseException:
        results[path] = {"error": traceback.format_exc(), "stdout": printed.getvalue()}
    plt.close("all")
print(json.dumps(results))
"""


def test_every_seed_script_has_a_lab():
    assert sorted(p.stem for p in LABS.glob("*.py")) == sorted(SEED_SCRIPTS)


def run_labs(job) -> int:
    """Run every lab in one process, in the job's folder; conftest.py queues this when the
    tests are collected, so the labs run while other tests do. Returns its exit status."""
    paths = [str(LABS / f"{name}.py") for name in SEED_SCRIPTS]
    return job.start(
        [sys.executable, "-c", RUN_ALL, *paths], cwd=job.folder,
        env=dict(os.environ, MPLBACKEND="Agg"), stdout=(job.folder / "out.json").open("w"),
        stderr=subprocess.STDOUT,
    ).wait()


@pytest.fixture(scope="module")
def lab_runs(background):
    job, folder = background("lab_runs")
    returncode = job.wait(timeout=600)
    output = (folder / "out.json").read_text()
    assert returncode == 0, output[-3000:]
    return {Path(path).stem: run for path, run in json.loads(output).items()}


@pytest.mark.parametrize("name", SEED_SCRIPTS)
def test_lab_runs_alone(lab_runs, name):
    assert lab_runs[name]["error"] is None, lab_runs[name]["error"][-3000:]
    assert lab_runs[name]["stdout"].strip(), "a lab should print what it shows"


def defined_names(source: str) -> set[str]:
    """The functions and classes a piece of Python defines at its top level."""
    tree = ast.parse(source)
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}


def test_no_lab_redefines_what_a_page_defines():
    """A lab imports the package; it does not copy a page's code. A copied function or
    class keeps its name, so a name defined both on a page and in a lab is a copy (or a
    clash that would confuse a reader going back and forth)."""
    on_pages = {}
    for page in sorted((LABS.parent).rglob("*.md")):
        for block in extract_from_file(page):
            if block.syntax == "python":
                for name in defined_names(block.code):
                    on_pages.setdefault(name, page.name)
    clashes = {f"{lab.name}: {name} (also on {on_pages[name]})"
               for lab in LABS.glob("*.py")
               for name in defined_names(lab.read_text()) & on_pages.keys()}
    assert not clashes, "labs define what pages define; import it from the package:\n" + "\n".join(sorted(clashes))
