"""A training step (forward, backward, AdamW) on the book's batch: our GPTModel, plain
and after llm_from_scratch.cpu.optimize, against transformers' GPT2LMHeadModel.

The batch is the book's chapter 5 batch: 2 windows of 256 tokens of "The Verdict".
The model is GPT-2 small at a context of 256 (tied head, query/key/value biases,
dropout 0.1, in training mode): transformers builds it at random and saves it, and ours
loads that checkpoint twice, one copy plain and one through cpu.optimize, after checking
that the three compute the same loss. Each model gets its own AdamW (lr 4e-4, weight
decay 0.1). The steps of the three run side by side in one process, the order reversed
every repeat, and the medians give tokens per second.

Peak memory cannot be told apart within one process, so each model's is measured in a
child process of its own: the peak resident memory (VmHWM) of building the model and
its optimizer and running two steps, and how much of it came after the imports.

    python benchmarks/bench_train.py                      # 5 timed steps per model
    python benchmarks/bench_train.py --quick              # 2 timed steps per model
    python benchmarks/bench_train.py --json docs/assets/benchmark-train.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from provenance import code_sha256, commit, processor  # beside this file

NAMES = ("plain", "optimized", "transformers")
HF_CONFIG = dict(n_embd=768, n_layer=12, n_head=12, n_positions=256, vocab_size=50257,
                 resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
LR, WEIGHT_DECAY = 4e-4, 0.1
# The modules whose code the timed steps run (the data loader only picks the batch).
MEASURED = ("model.py", "cpu.py", "pretrained.py")


def book_batch():
    """The first batch of the book's training loader: 2 windows of 256 tokens."""
    from llm_from_scratch.train import create_dataloader_v1, the_verdict

    text = the_verdict()
    torch.manual_seed(123)
    loader = create_dataloader_v1(text[:int(0.9 * len(text))], batch_size=2, max_length=256,
                                  stride=256, shuffle=True, drop_last=True)
    return next(iter(loader))


def build(name, directory):
    """One of the three models, in training mode, from the checkpoint in directory."""
    if name == "transformers":
        from transformers import GPT2LMHeadModel

        return GPT2LMHeadModel.from_pretrained(directory).train()
    from llm_from_scratch import cpu
    from llm_from_scratch.pretrained import load_gpt2

    model = load_gpt2(directory)
    if name == "optimized":
        model = cpu.optimize(model)
    return model.train()


def logits_of(name, model, inputs):
    return model(inputs).logits if name == "transformers" else model(inputs)


def make_step(name, model, inputs, targets):
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def step():
        optimizer.zero_grad()
        logits = logits_of(name, model, inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def save_random_gpt2(directory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(123)
    GPT2LMHeadModel(GPT2Config(**HF_CONFIG)).save_pretrained(directory)


def peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM on Linux (ru_maxrss would
    include the parent's memory from before exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_child(name, directory) -> dict:
    """Run in a child process: the peak memory of building name and two steps."""
    inputs, targets = book_batch()
    before = peak_rss()
    step = make_step(name, build(name, directory), inputs, targets)
    step(), step()
    peak = peak_rss()
    return {"peak_rss_mb": peak / 2**20, "above_imports_mb": (peak - before) / 2**20}


def measure_memory(name, directory) -> dict:
    result = subprocess.run([sys.executable, __file__, "--memory-of", name, directory],
                            capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 timed steps instead of 5")
    parser.add_argument("--json", metavar="FILE", help="write the results there")
    parser.add_argument("--memory-of", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_of:  # a child process of measure_memory
        print(json.dumps(memory_child(*args.memory_of)))
        return
    import transformers

    from llm_from_scratch import cpu

    repeats = 2 if args.quick else 5
    inputs, targets = book_batch()
    with tempfile.TemporaryDirectory() as directory:
        save_random_gpt2(directory)
        models = {name: build(name, directory) for name in NAMES}
        # The same function: the same loss on the batch, without dropout.
        with torch.no_grad():
            losses = {}
            for name, model in models.items():
                model.eval()
                logits = logits_of(name, model, inputs)
                losses[name] = F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()
                model.train()
        assert max(losses.values()) - min(losses.values()) < 1e-3, losses
        adopted = sorted({type(m).__name__ for m in models["optimized"].modules()}
                         - {type(m).__name__ for m in models["plain"].modules()})
        steps = {name: make_step(name, model, inputs, targets)
                 for name, model in models.items()}
        for step in steps.values():  # warm-up: the first step allocates AdamW's state
            step()
        times = {name: [] for name in NAMES}
        for r in range(repeats):
            for name in NAMES if r % 2 == 0 else reversed(NAMES):
                start = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - start)
            print(f"repeat {r + 1}/{repeats}: "
                  + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in NAMES), flush=True)
        del models, steps
        memory = {name: measure_memory(name, directory) for name in NAMES}

    tokens = inputs.numel()
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "what": "one training step (forward, backward, AdamW) on 2 x 256 tokens, "
                "GPT-2 small at context 256, float32, training mode (dropout 0.1)",
        "command": "python benchmarks/bench_train.py" + (" --quick" if args.quick else ""),
        "processor": processor(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "commit": commit(),
        "modules": list(MEASURED), "code_sha256": code_sha256(MEASURED),
        "repeats": repeats, "loss_before_training": losses,
        "optimize_adopted": adopted,
        "seconds": times, "median_seconds": median,
        "tokens_per_second": {n: tokens / median[n] for n in NAMES},
        "memory": memory,
        "ratios": {"transformers/plain": median["transformers"] / median["plain"],
                   "transformers/optimized": median["transformers"] / median["optimized"],
                   "plain/optimized": median["plain"] / median["optimized"]},
    }
    for name in NAMES:
        print(f"{name:>12}: {median[name]:.2f} s a step, {tokens / median[name]:,.0f} tokens/s, "
              f"peak {memory[name]['peak_rss_mb']:,.0f} MB "
              f"({memory[name]['above_imports_mb']:,.0f} MB above the imports)")
    print("ratios (above 1: the second is faster): "
          + ", ".join(f"{k} {v:.2f}" for k, v in result["ratios"].items()))
    print("optimize adopted:", ", ".join(adopted) or "nothing that changes training")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print("wrote", args.json)


if __name__ == "__main__":
    main()
