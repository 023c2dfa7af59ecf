"""Our GPTModel against transformers' GPT2LMHeadModel: same architecture, same weights.

Every measurement runs both models side by side in one process, alternating which goes
first, and reports medians and the ratio (transformers' time / ours: above 1 means we
are faster). The machine may be shared and noisy; only the ratios are meaningful.

    python benchmarks/bench_vs_transformers.py            # the full run (~20 minutes here)
    python benchmarks/bench_vs_transformers.py --quick    # fewer repeats, shorter decodes
    python benchmarks/bench_vs_transformers.py --json out.json --decode-plot decode.png
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import tempfile
import time

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from llm_from_scratch.generate import generate, generate_text_simple
from llm_from_scratch.model import GPTConfig, GPTModel, LayerNorm, TransformerBlock

GPT2_SMALL = dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257)


def build_pair(seed: int = 0):
    """A random GPT-2 small in transformers, and ours loaded from its saved checkpoint."""
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(**GPT2_SMALL, attn_implementation="sdpa")).eval()
    with tempfile.TemporaryDirectory() as folder:
        hf.save_pretrained(folder)
        ours = GPTModel.from_pretrained(folder).eval()
    ids = torch.randint(0, 50257, (1, 16))
    with torch.no_grad():
        gap = (ours(ids) - hf(ids).logits).abs().max().item()
    assert gap < 1e-3, f"the two models disagree (max |logit gap| {gap}); benchmark is void"
    return ours, hf


class BuiltDirectly(nn.Module):
    """GPT-2 small built as the book builds it, for comparison with GPTModel's construction:
    every layer on the CPU draws PyTorch's default values, then GPT-2's N(0, 0.02) values
    are drawn over them on one core (chapter 10, "Building it in under a second")."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        self.out_head.weight = self.tok_emb.weight
        with torch.no_grad():
            for param in self.parameters():
                if param.dim() == 2:
                    param.normal_(0.0, 0.02)


def build(which: str):
    """A new randomly initialised GPT-2 small: "ours" or "transformers" (sdpa attention)."""
    if which == "ours":
        return GPTModel(GPTConfig.from_preset("gpt2-small"))
    return GPT2LMHeadModel(GPT2Config(**GPT2_SMALL, attn_implementation="sdpa"))


def first_construction_s(which: str, queue) -> None:
    """Run in a fresh process: seconds to build the first GPT-2 small after the imports."""
    start = time.perf_counter()
    build(which)
    queue.put(time.perf_counter() - start)


def in_fresh_process(target) -> dict:
    """target(which, queue) for ours and transformers, each in a new spawned process."""
    context = multiprocessing.get_context("spawn")
    result = {}
    for which in ["ours", "transformers"]:
        queue = context.Queue()
        process = context.Process(target=target, args=(which, queue))
        process.start()
        result[which] = queue.get()
        process.join()
    return result


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def side_by_side(ours_fn, hf_fn, repeats: int, warm_up: bool = True, between=None) -> dict:
    """Median seconds for each, alternating the order every repeat (after one warm-up).

    Also the ratio of each repeat's pair (transformers' time / ours), run back to back and
    so on the same machine state; `between()`, if given, runs after every pair.
    """
    if warm_up:
        ours_fn(), hf_fn()
    times = {"ours": [], "transformers": []}
    for r in range(repeats):
        pair = [("ours", ours_fn), ("transformers", hf_fn)]
        for name, fn in pair if r % 2 == 0 else reversed(pair):
            times[name].append(timed(fn))
        if between is not None:
            between()
    ours, hf = statistics.median(times["ours"]), statistics.median(times["transformers"])
    pair_ratios = [h / o for o, h in zip(times["ours"], times["transformers"])]
    return {"ours_s": ours, "transformers_s": hf, "speedup": hf / ours, "pair_ratios": pair_ratios}


def matmul_rate(square: torch.Tensor) -> float:
    """FLOP/s of one float32 product square @ square, timed now."""
    return 2 * square.shape[0] ** 3 / timed(lambda: square @ square)


def matmul_peak(square: torch.Tensor, seconds: float = 3.0) -> float:
    """The best rate of repeated square @ square products over a few seconds (FLOP/s)."""
    best, deadline = 0.0, time.perf_counter() + seconds
    matmul_rate(square)
    while time.perf_counter() < deadline:
        best = max(best, matmul_rate(square))
    return best


def forward_flops(cfg: GPTConfig, batch: int, tokens: int) -> float:
    """Matmul FLOPs of one forward pass: weights (2 per multiply-add) plus attention."""
    d, L, V = cfg.emb_dim, cfg.n_layers, cfg.vocab_size
    per_token = 2 * (L * 12 * d * d + d * V)  # qkv + out proj (4d^2), FFN (8d^2), head
    attention = 2 * 2 * L * tokens * tokens * d  # q k^T and weights @ v, full square
    return batch * (tokens * per_token + attention)


def peak_rss_mb(which: str, queue) -> None:
    """Run in a fresh process: build one model, one (4, 256) forward, report peak RSS."""
    torch.manual_seed(0)
    model = build(which).eval()
    with torch.no_grad():
        model(torch.randint(0, 50257, (4, 256)))  # logits of ours, an output object of theirs
    # VmHWM, not ru_maxrss: the latter survives exec and would report the parent's peak.
    with open("/proc/self/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    queue.put(hwm_kb / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats, decodes of 32 tokens")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--decode-plot", help="plot decode time vs new tokens (PNG)")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    torch.set_grad_enabled(False)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
    }

    square = torch.randn(2048, 2048)  # the product whose rate counts as the machine's peak
    peak = matmul_peak(square)
    print(f"machine: {results['machine']}; torch {torch.__version__}; matmul rate at the start "
          f"{peak / 1e9:.0f} GFLOP/s")

    results["construction"] = side_by_side(lambda: build("ours"), lambda: build("transformers"), repeats)
    direct = side_by_side(lambda: build("ours"), lambda: BuiltDirectly(GPTConfig.from_preset("gpt2-small")),
                          repeats)
    results["construction_direct"] = {"ours_s": direct["ours_s"], "direct_s": direct["transformers_s"],
                                      "speedup": direct["speedup"]}
    first = in_fresh_process(first_construction_s)
    results["construction_first_in_process"] = {"ours_s": first["ours"], "transformers_s": first["transformers"]}
    ours, hf = build_pair()
    cfg = ours.cfg
    c, d = results["construction"], results["construction_direct"]
    print(f"construction: ours {c['ours_s']:.2f} s, transformers {c['transformers_s']:.2f} s "
          f"({c['speedup']:.1f}x); built directly (book's way) {d['direct_s']:.2f} s ({d['speedup']:.1f}x)")
    print(f"first construction in a fresh process: ours {first['ours']:.2f} s, "
          f"transformers {first['transformers']:.2f} s")

    # MFU against two rates of the square product: the best one seen in the whole run (at
    # the start and between forward passes), and the median of those timed between the
    # forward passes of a shape, on the machine as it was while they ran.
    meanwhile = {}
    for batch, tokens in [(1, 128), (1, 512), (4, 256)]:
        ids = torch.randint(0, cfg.vocab_size, (batch, tokens))
        rates = meanwhile[batch, tokens] = []
        results[f"forward_{batch}x{tokens}"] = side_by_side(
            lambda: ours(ids), lambda: hf(ids).logits, repeats, between=lambda: rates.append(matmul_rate(square)))
    peak = max(peak, *(rate for rates in meanwhile.values() for rate in rates))
    results["matmul_peak_gflops"] = peak / 1e9
    print(f"\nforward (median s)          ours  transformers  speedup   MFU (ours) of the best rate "
          f"({peak / 1e9:.0f} GFLOP/s), of the rate meanwhile")
    for (batch, tokens), rates in meanwhile.items():
        r = results[f"forward_{batch}x{tokens}"]
        achieved = forward_flops(cfg, batch, tokens) / r["ours_s"]
        r["matmul_peak_meanwhile_gflops"] = statistics.median(rates) / 1e9
        r["mfu"] = achieved / peak
        r["mfu_vs_peak_meanwhile"] = achieved / statistics.median(rates)
        print(f"  ({batch}, {tokens}){'':<18}{r['ours_s']:.3f}  {r['transformers_s']:.3f}"
              f"{'':<7}{r['speedup']:.2f}x    {r['mfu']:.0%}, {r['mfu_vs_peak_meanwhile']:.0%} "
              f"(of {r['matmul_peak_meanwhile_gflops']:.0f} GFLOP/s)")

    ids = torch.randint(0, cfg.vocab_size, (2, 256))
    ours.train(), hf.train()  # dropout is 0.1 in both: the same work
    with torch.enable_grad():
        def step(model, logits_of):
            model.zero_grad(set_to_none=True)
            logits_of(ids).float().sum().backward()
        # Twice the repeats: a step is long, and its pairs scatter the most.
        r = side_by_side(lambda: step(ours, ours), lambda: step(hf, lambda x: hf(x).logits), 2 * repeats)
    ours.eval(), hf.eval()
    results["forward_backward_2x256"] = r
    print(f"  fwd+bwd (2, 256){'':<11}{r['ours_s']:.3f}  {r['transformers_s']:.3f}{'':<7}{r['speedup']:.2f}x"
          f"    (pairs from {min(r['pair_ratios']):.2f}x to {max(r['pair_ratios']):.2f}x)")

    prompt = torch.randint(0, cfg.vocab_size, (1, 8))
    lengths = [32] if args.quick else [64, 256]
    print("\ngreedy decoding (median s)  ours  transformers  speedup")
    decode_repeats = max(1, repeats // 2 + 1)
    for n in lengths:
        for cached in (True, False):
            hf_call = lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                                          min_new_tokens=n, do_sample=False, use_cache=cached, pad_token_id=0)
            # The forward passes above warmed both models up; decodes are long enough.
            r = side_by_side(lambda: generate(ours, prompt, n, use_cache=cached), hf_call,
                             decode_repeats, warm_up=False)
            r["tokens_per_s"] = n / r["ours_s"]
            results[f"decode_{n}_{'cache' if cached else 'nocache'}"] = r
            print(f"  {n} tokens, cache={'on ' if cached else 'off'}{'':<6}{r['ours_s']:.2f}  "
                  f"{r['transformers_s']:.2f}{'':<8}{r['speedup']:.2f}x   ({r['tokens_per_s']:.1f} tokens/s ours)")
        book = side_by_side(lambda: generate(ours, prompt, n),
                            lambda: generate_text_simple(ours, prompt, n, cfg.context_length),
                            decode_repeats, warm_up=False)
        results[f"decode_{n}_vs_generate_text_simple"] = {
            "generate_s": book["ours_s"], "generate_text_simple_s": book["transformers_s"],
            "speedup": book["speedup"]}
        print(f"  {n} tokens: cached generate is {book['speedup']:.1f}x faster than generate_text_simple")

    memory = in_fresh_process(peak_rss_mb)
    results["peak_memory"] = {"ours_mb": memory["ours"], "transformers_mb": memory["transformers"]}
    print(f"\npeak RSS, build + (4, 256) forward: ours {memory['ours']:.0f} MB, "
          f"transformers {memory['transformers']:.0f} MB")

    if args.decode_plot:
        plot_decode(ours, prompt, args.decode_plot, [8, 16, 32, 64, 128] if args.quick else [16, 32, 64, 128, 256])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def plot_decode(model, prompt, path, lengths) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_cache = [timed(lambda: generate(model, prompt, n)) for n in lengths]
    without = [timed(lambda: generate(model, prompt, n, use_cache=False)) for n in lengths]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lengths, without, "o-", label="without cache (recompute the sequence)")
    ax.plot(lengths, with_cache, "o-", label="with KV cache")
    ax.set_xlabel("new tokens (greedy, 8-token prompt)")
    ax.set_ylabel("seconds")
    ax.set_title("GPT-2 small decoding time on this machine's CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
