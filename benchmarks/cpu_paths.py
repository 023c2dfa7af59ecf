"""The two paths of chapter 13 (llm_from_scratch.cpu) against plain products, on GPT-2
small's shapes: what optimize measures, with more repeats and more input sizes.

    python benchmarks/cpu_paths.py
    python benchmarks/cpu_paths.py --repeats 15

Prints medians (plain and fast run alternately) and speed-ups (plain time / fast time):
- how fast all threads read memory (the sum of a 1 GB tensor);
- one row through each group of GPT-2 small's layers of one shape, one after another
  (as in a decode step), with plain products and with one_row_product, and the rate at
  which each reads the weights; and the same for the 12 layers of a model 64 wide;
- the vocabulary head on several numbers of rows, plain and sliced_product;
- the book's LayerNorm, GELU and MultiHeadAttention (GPT-2 small's 25, 12 and 12),
  written out and with their fused kernels (use_fused), forward passes on several
  batch shapes, and forward plus backward on the book's training batch (2 x 256).
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from llm_from_scratch.cpu import FUSED, one_row_product, sliced_product
from llm_from_scratch.model import GELU, LayerNorm, MultiHeadAttention


def side_by_side(plain, fast, repeats):
    plain(), fast()
    times = ([], [])
    for r in range(repeats):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            start = time.perf_counter()
            (plain, fast)[i]()
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    print(f"{torch.get_num_threads()} threads; median ms, speed-up = plain / fast")
    big = torch.ones(256_000_000)
    read = statistics.median([(lambda s: (big.sum(), time.perf_counter() - s)[1])(time.perf_counter())
                              for _ in range(5)])
    print(f"read with all threads (sum of 1 GB): {big.numel() * 4 / read / 1e9:.1f} GB/s")
    del big

    groups = {  # (out, in, bias, how many) as in GPT-2 small; and a 64-wide model's layers
        "attention 768x768 (48 layers)": (768, 768, True, 48),
        "feed-forward 3072x768 (12)": (3072, 768, True, 12),
        "feed-forward 768x3072 (12)": (768, 3072, True, 12),
        "head 50257x768 (1)": (50257, 768, False, 1),
        "64 wide 64x64 (12)": (64, 64, True, 12),
    }
    print("\none row through every layer of a group"
          " (median ms, weights read in GB/s)")
    print(f"  {'layers':<30}{'plain':^19}{'one_row_product':^20}"
          f"{'speed-up':>8}")
    for name, (out_f, in_f, bias, count) in groups.items():
        layers = [(torch.randn(out_f, in_f) * 0.02, torch.zeros(out_f) if bias else None) for _ in range(count)]
        x = torch.randn(1, 1, in_f)
        plain, fast = side_by_side(lambda: [F.linear(x, w, b) for w, b in layers],
                                   lambda: [one_row_product(x, w, b) for w, b in layers], args.repeats)
        size = out_f * in_f * 4 * count
        print(f"  {name:<30}{plain * 1e3:7.2f} ({size / plain / 1e9:4.1f} GB/s)"
              f"{fast * 1e3:8.2f} ({size / fast / 1e9:4.1f} GB/s)"
              f"{plain / fast:7.2f}x")

    weight = torch.randn(50257, 768) * 0.02
    print("\nthe head, 50257x768, on several rows")
    for rows in [2, 32, 256, 1024]:
        x = torch.randn(1, rows, 768)
        plain, fast = side_by_side(lambda: F.linear(x, weight), lambda: sliced_product(x, weight), args.repeats)
        print(f"  {rows:>5} rows   plain {plain * 1e3:8.2f}   sliced_product {fast * 1e3:8.2f}   {plain / fast:.2f}x")

    fused_kernels(args.repeats)


def fused_kernels(repeats: int) -> None:
    torch.manual_seed(0)
    kinds = {  # GPT-2 small's modules of each kind: (how many, input width)
        LayerNorm: (25, 768, lambda: LayerNorm(768)),
        GELU: (12, 3072, GELU),
        MultiHeadAttention: (12, 768, lambda: MultiHeadAttention(
            768, 768, 1024, 0.1, 12, qkv_bias=True).eval()),
    }
    print("\nthe book's formulas (plain) and fused kernels, all modules of a kind")
    for kind, (count, width, make) in kinds.items():
        modules = [make() for _ in range(count)]
        fused = FUSED[kind]
        for batch, tokens in [(1, 1), (2, 128), (4, 256)]:
            x = torch.randn(batch, tokens, width)
            plain, fast = side_by_side(
                lambda: [kind.forward(m, x) for m in modules],
                lambda: [fused.forward(m, x) for m in modules], repeats)
            shape = f"{batch}x{tokens}"
            print(f"  {kind.__name__:<18} ({count}) forward {shape:<5} "
                  f"plain {plain * 1e3:8.2f}  fused {fast * 1e3:8.2f}  "
                  f"{plain / fast:.2f}x")
        with torch.enable_grad():
            x = torch.randn(2, 256, width, requires_grad=True)

            def train_step(forward):
                return lambda: sum(forward(m, x).sum() for m in modules).backward()

            plain, fast = side_by_side(train_step(kind.forward), train_step(fused.forward),
                                       repeats)
        print(f"  {kind.__name__:<18} ({count}) fwd+bwd 2x256 "
              f"plain {plain * 1e3:8.2f}  fused {fast * 1e3:8.2f}  "
              f"{plain / fast:.2f}x")


if __name__ == "__main__":
    main()
