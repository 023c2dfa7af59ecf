"""Every lab runs alone with `python docs/labs/<name>.py`, as a reader would run it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

LABS = Path(__file__).resolve().parents[1] / "docs" / "labs"
SEED_SCRIPTS = [
    "configuration", "tokenization_basics", "layer_normalization", "activation_functions",
    "feed_forward_network", "shortcut_connections", "transformer_block",
    "gpt_model_assembly", "text_generation",
]


def test_every_seed_script_has_a_lab():
    assert sorted(p.stem for p in LABS.glob("*.py")) == sorted(SEED_SCRIPTS)


@pytest.mark.parametrize("name", SEED_SCRIPTS)
def test_lab_runs_alone(name, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(LABS / f"{name}.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "a lab should print what it shows"
