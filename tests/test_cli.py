"""The command line, `python -m llm_from_scratch info | generate | train` (docs/command-line.md).

`train` itself is tested in tests/test_train.py and tests/test_train_ddp.py; here, its
argument checks.

The main paths run in a subprocess, exactly as a user types them; the many small argument
checks call `main(argv)` in-process, which returns the same exit status.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llm_from_scratch.__main__ import main
from llm_from_scratch.model import GPTConfig, GPTModel, init_gpt2_weights
from llm_from_scratch.pretrained import save_gpt2


def run(*args, timeout=300):
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout)


def command(*args):
    return [sys.executable, "-m", "llm_from_scratch", *args]


# The console script of the environment running the tests (not whichever is on PATH).
CONSOLE_SCRIPT = Path(sys.executable).parent / "llm-from-scratch"


def background_commands(folder):
    """The subprocesses that need no file made by a test, started when the tests are
    collected (conftest.py), to run in the background while other tests run."""
    runs = {"info": command("info"),
            "bad value": command("generate", "--prompt", "Hello", "--temperature", "-1")}
    if CONSOLE_SCRIPT.exists():
        runs["console script"] = [str(CONSOLE_SCRIPT), "info", "--preset", "gpt2-medium"]
    return runs


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A small random GPT-2 with GPT-2's vocabulary, saved as a checkpoint directory."""
    torch.manual_seed(123)
    cfg = GPTConfig(context_length=64, emb_dim=32, n_heads=4, n_layers=2, qkv_bias=True, tie_weights=True)
    return save_gpt2(init_gpt2_weights(GPTModel(cfg)), tmp_path_factory.mktemp("weights"))


# --- in a subprocess -----------------------------------------------------------


def test_info_subprocess(commands):
    results, _ = commands
    returncode, out, err = results["info"]
    assert returncode == 0, err
    assert out.startswith("gpt2-small\n")
    assert "emb_dim         768" in out and "n_layers        12" in out
    assert "124,439,808" in out and "163,037,184" in out  # tied and untied
    assert "474.7 MB" in out and "237.4 MB" in out  # float32 and bfloat16, tied


def test_generate_subprocess_with_weights(weights, capsys):
    args = ["generate", "--weights", str(weights), "--prompt", "Hello, I am",
            "--max-new-tokens", "4", "--temperature", "0.8", "--top-k", "20", "--seed", "5"]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello, I am")
    assert "gibberish" not in result.stderr  # real weights: no note
    assert main(args) == 0  # the same seed samples the same text in another process
    assert capsys.readouterr().out == result.stdout


def test_bad_value_subprocess_exits_2(commands):
    results, _ = commands
    returncode, out, err = results["bad value"]
    assert returncode == 2
    assert "argument --temperature: must be a number >= 0, got -1" in err
    assert err.startswith("usage: python -m llm_from_scratch generate")
    assert out == ""


def test_missing_weights_exits_1(tmp_path, capsys):
    # In process: the subprocess above shows main's status becomes the exit status.
    assert main(["generate", "--prompt", "Hello", "--weights", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint directory")
    assert "nowhere" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="console script not installed in this environment")
def test_console_script(commands):
    results, _ = commands
    returncode, out, err = results["console script"]
    assert returncode == 0, err
    assert "354,823,168" in out


# --- in-process: every argument check --------------------------------------------


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: command"),
    (["train"], "the following arguments are required: TEXT_FILE"),
    (["tune"], "invalid choice: 'tune'"),
    (["train", "t.txt", "--epochs", "0"], "--epochs: must be an integer >= 1, got 0"),
    (["train", "t.txt", "--lr", "-1"], "--lr: must be a number > 0, got -1"),
    (["train", "t.txt", "--lr", "fast"], "--lr: expected a number > 0, got 'fast'"),
    (["train", "t.txt", "--train-ratio", "1"], "--train-ratio: must be in (0, 1), got 1"),
    (["train", "t.txt", "--drop-rate", "1"], "--drop-rate: must be in [0, 1), got 1"),
    (["train", "t.txt", "--batch-size", "0"], "--batch-size: must be an integer >= 1, got 0"),
    (["train", "t.txt", "--preset", "gpt3"], "invalid choice: 'gpt3'"),
    (["train", "t.txt", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["train", "t.txt", "--out", "a", "--resume", "b"], "not allowed with argument"),
    (["generate"], "the following arguments are required: --prompt"),
    (["generate", "--prompt", ""], "--prompt: must not be empty"),
    (["generate", "--prompt", "x", "--temperature", "nan"], "must be a number >= 0, got nan"),
    (["generate", "--prompt", "x", "--temperature", "warm"], "expected a number >= 0, got 'warm'"),
    (["generate", "--prompt", "x", "--top-k", "0"], "--top-k: must be an integer >= 1, got 0"),
    (["generate", "--prompt", "x", "--top-k", "2.5"], "--top-k: expected an integer >= 1, got '2.5'"),
    (["generate", "--prompt", "x", "--top-p", "1.5"], "--top-p: must be in (0, 1], got 1.5"),
    (["generate", "--prompt", "x", "--top-p", "0"], "--top-p: must be in (0, 1], got 0"),
    (["generate", "--prompt", "x", "--max-new-tokens", "-3"], "must be an integer >= 0, got -3"),
    (["generate", "--prompt", "x", "--preset", "gpt3"], "invalid choice: 'gpt3'"),
    (["generate", "--prompt", "x", "--preset", "gpt2-xl", "--weights", "d"], "not allowed with argument"),
    (["info", "--preset", "gpt2-huge"], "invalid choice: 'gpt2-huge'"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_version_and_help_exit_0(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("python -m llm_from_scratch ")
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "info" in out and "generate" in out and "train" in out
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("TEXT_FILE", "--out", "--resume", "--preset", "--context-length",
                   "--emb-dim", "--n-layers", "--n-heads", "--drop-rate", "--epochs", "--lr",
                   "--weight-decay", "--batch-size", "--stride", "--train-ratio", "--eval-freq",
                   "--eval-iter", "--save-every", "--max-steps", "--seed", "--start-context",
                   "--device", "book-124m", "(default: 0.0004)", "(default: 2)"):
        assert option in out, option
    assert main(["generate", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--prompt", "--max-new-tokens", "--temperature", "--top-k", "--top-p",
                   "--seed", "--weights", "--preset"):
        assert option in out


def test_info_every_preset_in_process(capsys):
    expected = {"gpt2-small": ("124,439,808", "163,037,184"),
                "gpt2-medium": ("354,823,168", "406,286,336"),
                "gpt2-large": ("774,030,080", "838,359,040"),
                "gpt2-xl": ("1,557,611,200", "1,638,022,400")}
    for preset, (tied, untied) in expected.items():
        assert main(["info", "--preset", preset]) == 0
        out = capsys.readouterr().out
        assert out.startswith(preset + "\n")
        counts = next(line for line in out.splitlines() if line.startswith("parameters")).split()
        assert counts[1:] == [tied, untied]


def test_generate_in_process(weights, capsys):
    """Greedy output is reproducible, and 0 new tokens prints just the prompt."""
    argv = ["generate", "--weights", str(weights), "--prompt", "Hello, I am", "--max-new-tokens", "5"]
    assert main(argv) == 0
    greedy = capsys.readouterr().out
    assert greedy.startswith("Hello, I am") and greedy.endswith("\n")
    assert main(argv) == 0
    assert capsys.readouterr().out == greedy  # greedy decoding does not depend on chance
    assert main(argv + ["--max-new-tokens", "0"]) == 0
    assert capsys.readouterr().out == "Hello, I am\n"


def test_seed_changes_sampling(weights, capsys):
    base = ["generate", "--weights", str(weights), "--prompt", "Hi", "--max-new-tokens", "8",
            "--temperature", "1.5"]
    texts = set()
    for seed in ("1", "2", "3"):
        assert main(base + ["--seed", seed]) == 0
        texts.add(capsys.readouterr().out)
    assert len(texts) > 1


def test_random_weights_get_gpt2_initialisation_and_a_note(monkeypatch, capsys):
    # Without --weights the preset is built and given GPT-2's initialisation (a tied
    # GPTModel left with PyTorch's N(0, 1) embedding would score tokens with it), and
    # stderr says the text will be gibberish. (In process: building GPT-2 small in a
    # subprocess as well would cost seconds for what the other subprocesses show.)
    import llm_from_scratch.__main__ as cli

    initialised = []
    real = cli.gpt2_model

    def spy(*args, **kwargs):
        initialised.append(real(*args, **kwargs))
        return initialised[-1]

    monkeypatch.setattr(cli, "gpt2_model", spy)
    assert main(["generate", "--prompt", "Hello", "--max-new-tokens", "2"]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("Hello") and len(printed.out) > len("Hello\n")
    assert "random weights" in printed.err and "gibberish" in printed.err
    (model,) = initialised
    assert model.cfg == GPTConfig.from_preset("gpt2-small")
    assert model.out_head.weight is model.tok_emb.weight
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.01)


def test_checkpoint_with_a_small_vocabulary_is_a_clear_error(tmp_path, capsys):
    cfg = GPTConfig(vocab_size=101, context_length=16, emb_dim=32, n_heads=4, n_layers=1, qkv_bias=True)
    save_gpt2(GPTModel(cfg), tmp_path)
    assert main(["generate", "--weights", str(tmp_path), "--prompt", "Hello"]) == 1
    err = capsys.readouterr().err
    assert "vocabulary has 101 tokens" in err and "GPT-2's tokenizer" in err


def test_corrupt_checkpoint_exits_1(weights, tmp_path, capsys):
    (tmp_path / "config.json").write_bytes((weights / "config.json").read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    assert main(["generate", "--weights", str(tmp_path), "--prompt", "Hello"]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err
