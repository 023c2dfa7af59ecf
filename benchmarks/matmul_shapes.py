"""How fast the products of a GPT-2 small forward pass run, next to the peak product.

    python benchmarks/matmul_shapes.py [BATCH TOKENS]      # default: 4 256

The benchmark divides a forward pass's FLOPs by the rate of a square 2048^3 float32
product (its "matmul peak"). This script times each product shape of the forward pass
on its own, in rounds that also time the square product, and prints median rates and
their share of the square product's median rate. No forward pass can use the peak more
fully than its own products do alone.
"""

import statistics
import sys
import time

import torch
import torch.nn.functional as F


def rate(fn, flops: float) -> float:
    start = time.perf_counter()
    fn()
    return flops / (time.perf_counter() - start)


def main() -> None:
    batch, tokens = (int(a) for a in sys.argv[1:3]) if len(sys.argv) == 3 else (4, 256)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    rows, d = batch * tokens, 768
    x, wide = torch.randn(rows, d), torch.randn(rows, 4 * d)
    square = torch.randn(2048, 2048)

    def linear(inputs, out_features):  # a layer's product, with a bias like the model's
        weight, bias = torch.randn(out_features, inputs.shape[1]), torch.randn(out_features)
        return lambda: F.linear(inputs, weight, bias), 2 * rows * inputs.shape[1] * out_features

    head_slice = torch.randn(512, d)
    shapes = {
        "square 2048^3 (the peak product)": (lambda: square @ square, 2 * 2048**3),
        f"query/key/value/out {rows}x768 -> 768": linear(x, d),
        f"feed-forward in {rows}x768 -> 3072": linear(x, 4 * d),
        f"feed-forward out {rows}x3072 -> 768": linear(wide, d),
        f"head slice {rows}x768 -> 512": (lambda: F.linear(x, head_slice), 2 * rows * d * 512),
    }
    rates = {name: [] for name in shapes}
    for fn, _ in shapes.values():
        fn()  # warm-up
    for _ in range(15):  # rounds: every shape once, the square product among them
        for name, (fn, flops) in shapes.items():
            rates[name].append(rate(fn, flops))
    peak = statistics.median(rates["square 2048^3 (the peak product)"])
    print(f"median GFLOP/s over 15 rounds; share of the square product's median ({peak / 1e9:.0f} GFLOP/s)")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"  {name:<42}{median / 1e9:6.0f}   {median / peak:4.0%}")


if __name__ == "__main__":
    main()
