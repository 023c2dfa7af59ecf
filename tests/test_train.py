"""Training (chapter 14, llm_from_scratch/train.py, `python -m llm_from_scratch train`).

The book's recipe gives the book's first evaluation line; the command trains, saves and
resumes to the very losses of an uninterrupted run (after --max-steps and after Ctrl-C);
`generate` and `GPTModel.load_state_dict` read its checkpoints; and every bad input is a
clear error that loses nothing. The models are tiny, except in the book-recipe test.

`python tests/test_train.py` redraws docs/assets/pretraining-loss.svg from the losses
the chapter prints (test_loss_figure_shows_the_page_s_run checks that it does).
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import llm_from_scratch.train as train
from llm_from_scratch.__main__ import main
from llm_from_scratch.model import GPTConfig, GPTModel
from llm_from_scratch.tokenizer import get_tokenizer
from llm_from_scratch.train import (CHECKPOINT, LOSSES, THE_VERDICT, THE_VERDICT_SHA256,
                                    GPTDatasetV1, ProgressBar, calc_loss_loader,
                                    create_dataloader_v1, load_checkpoint,
                                    load_trained_model, read_text, the_verdict)

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "chapters" / "14-pretraining.md"
FIGURE = ROOT / "docs" / "assets" / "pretraining-loss.svg"

# A tiny model with GPT-2's vocabulary: 9 steps an epoch on the story. Dropout is on,
# so that resuming must also restore the generator the dropout masks come from.
TINY = ["--context-length", "32", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
        "--drop-rate", "0.1", "--batch-size", "8", "--stride", "64", "--lr", "0.01",
        "--eval-freq", "3", "--eval-iter", "2", "--save-every", "5", "--epochs", "2"]
STEPS = 18  # 2 epochs of 9 steps


def train_cli(*args, text=THE_VERDICT):
    return main(["train", str(text), *args])


def losses(run_dir):
    return (run_dir / LOSSES).read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tiny run, trained start to end in one go."""
    run_dir = tmp_path_factory.mktemp("runs") / "whole"
    assert train_cli("--out", str(run_dir), *TINY) == 0
    return run_dir


# --- the story and the book's functions ---------------------------------------------


def test_the_story_is_the_book_s():
    data = THE_VERDICT.read_bytes()
    assert hashlib.sha256(data).hexdigest() == THE_VERDICT_SHA256
    text = the_verdict()
    assert len(text) == 20479 and len(get_tokenizer().encode(text)) == 5145


def test_a_changed_story_is_refused(tmp_path):
    copy = tmp_path / "the-verdict.txt"
    copy.write_bytes(THE_VERDICT.read_bytes().replace(b"Gisburn", b"Gisborn", 1))
    with pytest.raises(ValueError, match="SHA-256 checksum .* not " + THE_VERDICT_SHA256):
        read_text(copy, sha256=THE_VERDICT_SHA256)


def test_windows_and_their_targets():
    tokenizer = get_tokenizer()
    text = "In the beginning was the word, and the word was with the story of it all."
    ids = tokenizer.encode(text)
    dataset = GPTDatasetV1(text, tokenizer, max_length=4, stride=3)
    assert len(dataset) == len(range(0, len(ids) - 4, 3))
    for k in range(len(dataset)):
        x, y = dataset[k]
        assert x.tolist() == ids[3 * k:3 * k + 4]
        assert y.tolist() == ids[3 * k + 1:3 * k + 5]  # shifted by one


def test_a_text_without_a_window_is_an_error():
    with pytest.raises(ValueError, match="the text has 3 tokens, fewer than one window of "
                                         "max_length=256 tokens plus the one after it"):
        create_dataloader_v1("far too short", batch_size=2, max_length=256)


def test_a_loader_without_batches_is_an_error_not_nan():
    loader = create_dataloader_v1("one two three four five six seven eight", batch_size=4,
                                  max_length=4, stride=4, drop_last=True)
    assert len(loader.dataset) == 1 and len(loader) == 0
    with pytest.raises(ValueError, match="no batches"):
        calc_loss_loader(loader, None, "cpu")


@pytest.mark.parametrize("num_batches, error", [(0, ValueError), (-1, ValueError),
                                                 (1.5, TypeError), (True, TypeError)])
def test_num_batches_is_a_count_of_at_least_one(num_batches, error):
    loader = create_dataloader_v1("one two three four five six seven eight", batch_size=1,
                                  max_length=4, stride=4)
    with pytest.raises(error, match="num_batches must be an int >= 1 or None"):
        calc_loss_loader(loader, None, "cpu", num_batches=num_batches)


BOOK_CONFIG = {"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12,
               "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False}


class FirstLines(Exception):
    pass


BOOK_FIRST_EPOCH = ["Ep 1 (Step 000000): Train loss 9.781, Val loss 9.933",
                    "Ep 1 (Step 000005): Train loss 8.111, Val loss 8.339",
                    "Every effort moves you,,,,,,,,,,,,."]


def book_recipe_prints(monkeypatch, lines):
    """The first lines the book's chapter 5 cells print with our package. The run stops
    after them (the ten epochs take many minutes): print raises once it has them."""
    text_data = the_verdict()
    split_idx = int(0.90 * len(text_data))
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text_data[:split_idx], batch_size=2,
                                        max_length=256, stride=256, drop_last=True,
                                        shuffle=True, num_workers=0)
    val_loader = create_dataloader_v1(text_data[split_idx:], batch_size=2, max_length=256,
                                      stride=256, drop_last=False, shuffle=False,
                                      num_workers=0)
    torch.manual_seed(123)
    model = GPTModel(BOOK_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    printed = []

    def first_lines_only(*args, **kwargs):
        printed.append(" ".join(map(str, args)).rstrip())
        if len(printed) == lines:
            raise FirstLines

    monkeypatch.setattr(train, "print", first_lines_only, raising=False)
    with pytest.raises(FirstLines):
        train.train_model_simple(model, train_loader, val_loader, optimizer, "cpu",
                                 num_epochs=10, eval_freq=5, eval_iter=5,
                                 start_context="Every effort moves you",
                                 tokenizer=get_tokenizer())
    return printed


def test_the_book_s_recipe_prints_the_book_s_first_line(monkeypatch):
    assert book_recipe_prints(monkeypatch, 1) == BOOK_FIRST_EPOCH[:1]


@pytest.mark.skipif(not os.environ.get("LLM_FROM_SCRATCH_SLOW"),
                    reason="a minute of training; set LLM_FROM_SCRATCH_SLOW=1 to run it")
def test_the_book_s_recipe_prints_the_book_s_first_epoch(monkeypatch):
    assert book_recipe_prints(monkeypatch, 3) == BOOK_FIRST_EPOCH


# --- the command: training, resuming, loading ------------------------------------------


def test_the_command_trains_and_saves(uninterrupted, capsys):
    records = [json.loads(line) for line in losses(uninterrupted)]
    assert [r["step"] for r in records] == list(range(0, STEPS, 3))
    assert records[-1]["train_loss"] < records[0]["train_loss"] - 1  # it learns
    state = load_checkpoint(uninterrupted)
    assert state["step"] == STEPS - 1 and state["epoch"] == 2 and state["batch"] == 0
    assert not any(name.startswith("module.") for name in state["model"])
    assert state["history"] == records
    assert sorted(p.name for p in uninterrupted.iterdir()) == [CHECKPOINT, LOSSES]


def test_resume_after_max_steps_equals_an_uninterrupted_run(uninterrupted, tmp_path):
    """Stopped in the middle of the first epoch, then at the end of it: the resumed run
    evaluates the same losses, and ends with the same weights, bit for bit."""
    run_dir = tmp_path / "stopped"
    assert train_cli("--out", str(run_dir), *TINY, "--max-steps", "5") == 0
    assert load_checkpoint(run_dir)["step"] == 4
    assert losses(run_dir) == losses(uninterrupted)[:2]  # steps 0 and 3
    assert train_cli("--resume", str(run_dir), "--max-steps", "9") == 0
    assert load_checkpoint(run_dir)["batch"] == 9  # the end of the first epoch
    assert train_cli("--resume", str(run_dir)) == 0
    assert losses(run_dir) == losses(uninterrupted)
    resumed, whole = load_checkpoint(run_dir), load_checkpoint(uninterrupted)
    for name, tensor in whole["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name


def test_ctrl_c_saves_and_resume_continues(uninterrupted, tmp_path):
    """Ctrl-C in a real process: it saves and exits with 130, and --resume ends where
    the uninterrupted run ended."""
    run_dir = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "llm_from_scratch", "train",
                             str(THE_VERDICT), "--out", str(run_dir), *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / LOSSES).exists() or not losses(run_dir):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no evaluation within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "SIGINT: saving a checkpoint after this step" in err
    assert "interrupted after" in err and "--resume" in err and "Traceback" not in err
    stopped_at = load_checkpoint(run_dir)["step"]
    assert 0 <= stopped_at < STEPS - 1
    assert train_cli("--resume", str(run_dir)) == 0
    assert losses(run_dir) == losses(uninterrupted)


def test_generate_reads_a_training_checkpoint(uninterrupted, capsys):
    argv = ["generate", "--weights", str(uninterrupted), "--prompt", "Every effort moves you",
            "--max-new-tokens", "5"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Every effort moves you") and len(out) > len("Every effort moves you\n")
    # The checkpoint file works too, and the model is the one saved, in eval mode.
    assert main(argv[:2] + [str(uninterrupted / CHECKPOINT)] + argv[3:]) == 0
    assert capsys.readouterr().out == out
    state = load_checkpoint(uninterrupted)
    model = load_trained_model(uninterrupted)
    assert not model.training
    plain = GPTModel(GPTConfig.from_dict(state["config"]))
    plain.load_state_dict(state["model"])  # strict: the plain model's names
    ids = torch.tensor([[464, 3290, 373, 257]])
    assert torch.equal(model(ids), plain.eval()(ids))


def test_the_progress_bar_shows_step_and_loss():
    class Terminal:
        text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

        def isatty(self):
            return True

    terminal = Terminal()
    bar = ProgressBar(10, stream=terminal)
    bar.show(1, 9.5, 512)
    bar.show(4, 7.25, 2048)
    assert "step 4/10" in terminal.text and "loss 7.250" in terminal.text
    assert "[########------------]" in terminal.text
    bar.clear()
    assert terminal.text.endswith("\r\033[K")
    quiet = ProgressBar(10, stream=Terminal(), enabled=False)
    quiet.show(1, 1.0, 1)
    assert quiet.stream.text == ""


def test_a_failed_save_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    train.save_checkpoint({"format": train.FORMAT, "step": 1}, tmp_path)

    def crash(state, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        train.save_checkpoint({"format": train.FORMAT, "step": 2}, tmp_path)
    assert load_checkpoint(tmp_path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]


# --- bad input: a clear error, and nothing lost ---------------------------------------


def error_of(argv, capsys):
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"  \n\n ", "is empty"),
    (b"caf\xe9 au lait", "is not UTF-8 text (byte 0xe9 at offset 3)"),
    (b"Far too short a story to learn from.", "fewer than one window of 32"),
])
def test_bad_texts(tmp_path, capsys, content, message):
    text = tmp_path / "story.txt"
    if content is not None:
        text.write_bytes(content)
    line = error_of(["train", str(text), "--out", str(tmp_path / "run"), *TINY], capsys)
    assert message in line and str(text) in line
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_text_too_short_for_validation(tmp_path, capsys):
    text = tmp_path / "story.txt"
    text.write_text(the_verdict()[:3000], encoding="utf-8")
    line = error_of(["train", str(text), *TINY, "--context-length", "128"], capsys)
    assert "the validation part (the last 10% of the text" in line
    assert "shorter than one window of 128 tokens plus one" in line


def test_a_directory_is_not_a_text(tmp_path, capsys):
    assert "is a directory" in error_of(["train", str(tmp_path), *TINY], capsys)


def test_resume_needs_a_checkpoint(tmp_path, capsys):
    line = error_of(["train", str(THE_VERDICT), "--resume", str(tmp_path)], capsys)
    assert f"no training checkpoint in {tmp_path}" in line


@pytest.mark.parametrize("options, message", [
    (["--emb-dim", "64"], "holds a model with emb_dim 16, but the options ask for emb_dim 64"),
    (["--preset", "book-124m"], "a checkpoint loads only into a model of its own size"),
    (["--lr", "0.001"], "the run in {} has --lr 0.01; a resumed run keeps its settings"),
    (["--batch-size", "4"], "has --batch-size 8"),
])
def test_a_resumed_run_keeps_its_model_and_settings(uninterrupted, capsys, options, message):
    before = (uninterrupted / CHECKPOINT).read_bytes()
    line = error_of(["train", str(THE_VERDICT), "--resume", str(uninterrupted), *options],
                    capsys)
    assert message.format(uninterrupted) in line
    assert (uninterrupted / CHECKPOINT).read_bytes() == before


def test_resume_with_another_text(uninterrupted, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text(the_verdict().replace("Gisburn", "Grindle"), encoding="utf-8")
    line = error_of(["train", str(other), "--resume", str(uninterrupted)], capsys)
    assert "is not the text the run in" in line


def test_a_new_run_does_not_overwrite_a_checkpoint(uninterrupted, capsys):
    before = (uninterrupted / CHECKPOINT).read_bytes(), losses(uninterrupted)
    line = error_of(["train", str(THE_VERDICT), "--out", str(uninterrupted), *TINY], capsys)
    assert f"already holds a checkpoint; continue it with --resume {uninterrupted}" in line
    assert ((uninterrupted / CHECKPOINT).read_bytes(), losses(uninterrupted)) == before


def test_a_finished_run_resumed_trains_no_more(uninterrupted, capsys):
    before = (uninterrupted / CHECKPOINT).read_bytes()
    assert main(["train", str(THE_VERDICT), "--resume", str(uninterrupted)]) == 0
    assert capsys.readouterr().out == ""
    assert (uninterrupted / CHECKPOINT).read_bytes() == before


def test_a_corrupt_checkpoint(tmp_path, capsys):
    (tmp_path / CHECKPOINT).write_bytes(b"PK\x03\x04 and then nothing")
    line = error_of(["generate", "--weights", str(tmp_path), "--prompt", "Hi"], capsys)
    assert "truncated or corrupt" in line


# --- the figure on the page -------------------------------------------------------------


def page_losses():
    """(train, val) of each evaluation line the chapter shows for its small model."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Watch it learn", 1)[1].split("### Why the two curves", 1)[0]
    found = re.findall(r"Train loss (\d+\.\d+), Val loss (\d+\.\d+)", section)
    return [(float(t), float(v)) for t, v in found]


def figure_losses():
    described = re.search(r"<dc:description>(.*?)</dc:description>",
                          FIGURE.read_text(encoding="utf-8"), flags=re.S)
    return [tuple(pair) for pair in json.loads(described.group(1))]


def test_loss_figure_shows_the_page_s_run():
    assert len(page_losses()) >= 5
    assert figure_losses() == page_losses()


def draw_figure():
    """Run the chapter's training blocks and save their figure, its data described."""
    from pytest_codeblocks import extract_from_file

    blocks = [b for b in extract_from_file(PAGE) if "fig = plot_losses(" in b.code]
    (block,) = blocks
    scope = {}
    exec(block.code, scope)
    pairs = [[round(t, 3), round(v, 3)]
             for t, v in zip(scope["train_losses"], scope["val_losses"])]
    scope["fig"].savefig(FIGURE, format="svg",
                         metadata={"Date": None, "Description": json.dumps(pairs)})


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    draw_figure()
    print(f"wrote {FIGURE}")


@pytest.mark.parametrize("settings, error", [
    (dict(epochs="10"), TypeError), (dict(epochs=2.5), TypeError),
    (dict(batch_size=True), TypeError), (dict(lr="4e-4"), TypeError),
    (dict(epochs=0), ValueError), (dict(train_ratio=1.0), ValueError),
])
def test_training_settings_of_a_wrong_type_or_value_are_refused(settings, error):
    from llm_from_scratch.train import TrainSettings

    (name,) = settings
    with pytest.raises(error, match=name):
        TrainSettings(**settings)
    TrainSettings(lr=1)  # an int is a fine float
