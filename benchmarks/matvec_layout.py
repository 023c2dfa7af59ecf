"""One row times GPT-2 small's weights, in the two layouts a library can store them:
nn.Linear's (out, in), read by F.linear, and the (in, out) of GPT-2's original Conv1D,
read by torch.addmm, as transformers' GPT-2 does. It explains most of the decoding gap
between our plain model and transformers' on the Performance page.

    python benchmarks/matvec_layout.py

Prints the median milliseconds for all of a token's layers of one shape (plain runs,
the two layouts alternately) and the ratio F.linear / addmm (above 1: addmm is faster).
"""

import torch
import torch.nn.functional as F
from cpu_paths import side_by_side  # the same alternating timing as chapter 13's figures

# (out, in, layers per token in GPT-2 small), as our model and as transformers' computes them
OURS = [(768, 768, 48), (3072, 768, 12), (768, 3072, 12)]
THEIRS = [(2304, 768, 12), (768, 768, 12), (3072, 768, 12), (768, 3072, 12)]


def layers(shape, count):
    out_features, in_features = shape
    weights = [torch.randn(out_features, in_features) for _ in range(count)]
    return weights, [torch.randn(out_features) for _ in range(count)]


def main(repeats: int = 15) -> None:
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    totals = {"F.linear": 0.0, "addmm": 0.0}
    print(f"{torch.get_num_threads()} threads; median ms per token, one row")
    for out_features, in_features, count in sorted(set(OURS) | set(THEIRS)):
        weights, biases = layers((out_features, in_features), count)
        transposed = [w.t().contiguous() for w in weights]  # (in, out), as GPT-2's Conv1D
        x = torch.randn(1, in_features)
        linear, addmm = side_by_side(
            lambda: [F.linear(x, w, b) for w, b in zip(weights, biases)],
            lambda: [torch.addmm(b, x, w) for w, b in zip(transposed, biases)],
            repeats,
        )
        ms = {"F.linear": 1000 * linear, "addmm": 1000 * addmm}
        if (out_features, in_features, count) in OURS:
            totals["F.linear"] += ms["F.linear"]
        if (out_features, in_features, count) in THEIRS:
            totals["addmm"] += ms["addmm"]
        print(f"  {out_features:>5} x {in_features:<5} ({count:>2} layers)  F.linear {ms['F.linear']:6.2f}"
              f"   addmm {ms['addmm']:6.2f}   F.linear / addmm {ms['F.linear'] / ms['addmm']:.2f}")
    print(f"a token's block layers: ours (F.linear, separate q, k, v) {totals['F.linear']:.1f} ms, "
          f"transformers' (addmm, fused q, k, v) {totals['addmm']:.1f} ms")


if __name__ == "__main__":
    main()
