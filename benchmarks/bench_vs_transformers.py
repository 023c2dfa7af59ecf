"""Our GPTModel, plain and after cpu.optimize, against transformers' GPT2LMHeadModel:
same architecture, same weights, one process.

transformers builds a random GPT-2 small and saves it; ours is loaded from that
checkpoint twice (one copy stays plain, the other goes through llm_from_scratch.cpu.optimize),
after checking that the logits agree. Every measurement runs the three side by side,
reversing the order every repeat, and reports medians and ratios. The machine may be
shared and noisy: only the ratios mean much, and they move from run to run.

    python benchmarks/bench_vs_transformers.py                 # the full run (~5 minutes here)
    python benchmarks/bench_vs_transformers.py --quick         # fewer repeats, shorter decodes
    python benchmarks/bench_vs_transformers.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llm_from_scratch import cpu
from llm_from_scratch.generate import generate, generate_text_simple
from llm_from_scratch.pretrained import load_gpt2
from provenance import code_sha256, commit, processor  # beside this file

GPT2_SMALL = dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257)
NAMES = ("plain", "optimized", "transformers")


# The package's modules this benchmark runs: their hash dates a result.
MEASURED = ("model.py", "generate.py", "kv_cache.py", "cpu.py", "pretrained.py")


def build_models(seed: int = 0):
    """transformers' random GPT-2 small, and ours loaded twice from its checkpoint."""
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(**GPT2_SMALL, attn_implementation="sdpa")).eval()
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        plain = load_gpt2(folder).eval()
        optimized = load_gpt2(folder).eval()
    start = time.perf_counter()
    cpu.optimize(optimized)
    optimize_s = time.perf_counter() - start
    ids = torch.randint(0, 50257, (1, 16))
    with torch.no_grad():
        reference = hf(ids).logits
        for model in (plain, optimized):
            gap = (model(ids) - reference).abs().max().item()
            assert gap < 1e-3, f"the models disagree (max |logit gap| {gap}); benchmark is void"
    return plain, optimized, hf, optimize_s


def adopted(model) -> dict:
    """Which modules optimize gave a fused kernel, and which layers which path."""
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, cpu.FastLinear)]
    fused = sorted({type(m).__name__ for m in model.modules() if type(m) in cpu.FUSED.values()})
    return {"fused": fused, "one_row": [n for n, m in layers if m.one_row],
            "sliced": [n for n, m in layers if m.sliced]}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(runs: dict, repeats: int, warm_up: bool = True) -> dict:
    """Median seconds of each run, the order reversed every repeat, and the ratios:
    above 1 means the second-named is slower than the first (so plain is faster than
    transformers when transformers/plain > 1)."""
    if warm_up:
        for fn in runs.values():
            fn()
    times = {name: [] for name in runs}
    for r in range(repeats):
        for name in list(runs) if r % 2 == 0 else reversed(list(runs)):
            times[name].append(timed(runs[name]))
    median = {name: statistics.median(t) for name, t in times.items()}
    result = {"median_s": median, "times_s": times}
    if set(runs) == set(NAMES):
        result["ratios"] = {
            "transformers/plain": median["transformers"] / median["plain"],
            "transformers/optimized": median["transformers"] / median["optimized"],
            "plain/optimized": median["plain"] / median["optimized"],
        }
        result["pair_ratios_plain/optimized"] = [p / o for p, o in zip(times["plain"], times["optimized"])]
    return result


def report(label: str, r: dict) -> None:
    m, q = r["median_s"], r["ratios"]
    print(f"  {label:<24}{m['plain']:>8.3f}{m['optimized']:>11.3f}{m['transformers']:>14.3f}"
          f"{q['transformers/plain']:>10.2f}x{q['transformers/optimized']:>9.2f}x{q['plain/optimized']:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats, decodes of 32 tokens")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of a forward pass (default 7)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    decode_repeats = 3 if args.quick else 5
    new_tokens = 32 if args.quick else 64
    torch.set_grad_enabled(False)

    import transformers

    results = {
        "processor": processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "command": "python benchmarks/bench_vs_transformers.py" + (" --quick" if args.quick else ""),
        "commit": commit(), "modules": list(MEASURED), "code_sha256": code_sha256(MEASURED),
    }
    print(f"{results['processor']}, {results['threads']} threads; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    plain, optimized, hf, optimize_s = build_models()
    results["optimize_s"] = optimize_s
    results["adopted"] = adopted(optimized)
    print(f"cpu.optimize took {optimize_s:.2f} s; fused: {', '.join(results['adopted']['fused']) or 'none'}; "
          f"one-row path on {len(results['adopted']['one_row'])} layers, "
          f"sliced: {results['adopted']['sliced'] or 'none'}")

    print(f"\nmedian seconds{'':<12}   plain  optimized  transformers  tf/plain   tf/opt  plain/opt")
    for batch, tokens in [(1, 128), (4, 256)]:
        ids = torch.randint(0, 50257, (batch, tokens))
        r = side_by_side({"plain": lambda: plain(ids), "optimized": lambda: optimized(ids),
                          "transformers": lambda: hf(ids).logits}, repeats)
        results[f"forward_{batch}x{tokens}"] = r
        report(f"forward ({batch}, {tokens})", r)

    prompt = torch.randint(0, 50257, (1, 8))
    hf_tokens = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                            min_new_tokens=new_tokens, do_sample=False, use_cache=True, pad_token_id=0)
    same = all(torch.equal(generate(m, prompt, new_tokens, use_cache=True), hf_tokens) for m in (plain, optimized))
    results["decode_same_tokens"] = same
    r = side_by_side({
        "plain": lambda: generate(plain, prompt, new_tokens, use_cache=True),
        "optimized": lambda: generate(optimized, prompt, new_tokens, use_cache=True),
        "transformers": lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt),
                                            max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                            do_sample=False, use_cache=True, pad_token_id=0),
    }, decode_repeats, warm_up=False)  # the calls above warmed all three up
    r["new_tokens"] = new_tokens
    results[f"decode_{new_tokens}_cached"] = r
    report(f"greedy, {new_tokens} tokens, cache", r)
    print(f"  (the three generate the same tokens: {same})")

    r = side_by_side({
        "generate": lambda: generate(plain, prompt, new_tokens, use_cache=True),
        "generate_text_simple": lambda: generate_text_simple(plain, prompt, new_tokens, 1024),
    }, max(1, decode_repeats - 2), warm_up=False)
    results[f"decode_{new_tokens}_vs_generate_text_simple"] = r
    m = r["median_s"]
    print(f"\nplain model, {new_tokens} new tokens: generate(use_cache=True) {m['generate']:.2f} s, "
          f"generate_text_simple {m['generate_text_simple']:.2f} s "
          f"({m['generate_text_simple'] / m['generate']:.1f}x)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
