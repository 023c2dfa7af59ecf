"""`train` on two processes under torchrun (DistributedDataParallel, gloo, CPU).

Two processes of 4 windows a step train as one process of 8 windows: the same global
batches, so the same losses up to float32 rounding, and the same weights. Only the first
process prints and saves, and its checkpoint holds the plain model's names. Too many
processes for the text is an error before training, not a hang. Every run has a
timeout, so a hang fails the test instead of the suite.
"""

import json
import sys

import pytest
import torch

from llm_from_scratch.__main__ import main
from llm_from_scratch.model import GPTConfig, GPTModel
from llm_from_scratch.train import LOSSES, THE_VERDICT, load_checkpoint

# Tiny, dropout off (the processes would draw the same masks for other windows than one
# process does), evaluated every 2 steps on 2 batches: 12 steps of 8 windows.
TINY = ["--context-length", "32", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
        "--drop-rate", "0", "--stride", "64", "--lr", "0.01", "--eval-freq", "2",
        "--eval-iter", "2", "--epochs", "2", "--max-steps", "12"]


def torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "llm_from_scratch", "train", str(THE_VERDICT), *args]


def background_commands(folder):
    """Both runs, started when the tests are collected (conftest.py): they run one after
    the other in the background while other tests take the main process. A run that
    hangs is killed after 240 s and fails its test."""
    return {
        "two": torchrun("--out", str(folder / "two"), "--batch-size", "4", *TINY),
        # 72 windows of 32 tokens: one process's batch of 40 fits, two processes' 80 do not.
        "too_many": torchrun("--out", str(folder / "too_many"), "--batch-size", "40", *TINY),
    }


def records(run_dir):
    return [json.loads(line) for line in (run_dir / LOSSES).read_text().splitlines()]


@pytest.fixture(scope="module")
def two_processes(commands):
    results, folder = commands
    returncode, stdout, stderr = results["two"]
    assert returncode == 0, stderr[-3000:]
    return folder / "two", stdout, stderr


def test_two_processes_train_as_one(two_processes, tmp_path):
    run_dir, _, _ = two_processes
    one = tmp_path / "one"
    assert main(["train", str(THE_VERDICT), "--out", str(one), "--batch-size", "8", *TINY]) == 0
    two_records, one_records = records(run_dir), records(one)
    assert [r["step"] for r in two_records] == [0, 2, 4, 6, 8, 10]
    for a, b in zip(two_records, one_records, strict=True):
        assert (a["step"], a["tokens_seen"]) == (b["step"], b["tokens_seen"])
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5, abs=1e-5)
    two_state, one_state = load_checkpoint(run_dir), load_checkpoint(one)
    assert two_state["step"] == one_state["step"] == 11
    for name, tensor in one_state["model"].items():
        torch.testing.assert_close(two_state["model"][name], tensor, rtol=1e-4, atol=1e-5)


def test_only_the_first_process_prints_and_its_checkpoint_has_plain_names(two_processes):
    run_dir, stdout, stderr = two_processes
    lines = [line for line in stdout.splitlines() if line.startswith("Ep ")]
    assert len(lines) == 6  # once each, not once per process
    assert "Ep 1 (Step 000000): Train loss" in lines[0]
    assert stderr.count("2 processes on cpu") == 1
    state = load_checkpoint(run_dir)
    assert state["world_size"] == 2
    assert not any(name.startswith("module.") for name in state["model"])
    model = GPTModel(GPTConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])  # strict
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "losses.jsonl"]


def test_more_processes_than_batches_is_an_error_before_training(commands):
    results, folder = commands
    returncode, stdout, stderr = results["too_many"]
    run_dir = folder / "too_many"
    assert returncode not in (0, None), stderr[-3000:]
    message = ("more processes than batches: 2 processes of 40 windows need 80 windows "
               "a step, and the training part has 72; use fewer processes")
    assert stderr.count(message) == 1, stderr[-3000:]
    assert "Ep 1" not in stdout
    assert not run_dir.exists()
