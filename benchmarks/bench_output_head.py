"""The vocabulary head of chapter 8 (OutputHead) against one plain product.

For each number of rows (tokens scored at once) it times, side by side in one process
with the order shuffled every repeat, the plain product F.linear(x, W) with GPT-2's
50257 x 768 weight, the same product done SLICE vocabulary rows at a time for several
slice sizes, and, for one row, OutputHead's one-row path (a batched product over equal
parts of the weight). It prints medians and speed-ups (plain time / other time).

    python benchmarks/bench_output_head.py              # rows 1, 4, 128, 512, 1024
    python benchmarks/bench_output_head.py --repeats 15
"""

import argparse
import random
import statistics
import time

import torch
import torch.nn.functional as F

from llm_from_scratch.model import OutputHead

ROWS = [1, 4, 128, 512, 1024]
SLICES = [256, 512, 1024, 2048]


def sliced_head(weight: torch.Tensor, size: int) -> OutputHead:
    head = OutputHead(weight.shape[1], weight.shape[0])
    head.weight = torch.nn.Parameter(weight, requires_grad=False)
    head.SLICE = size  # an instance attribute shadows the class's choice
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    weight = torch.randn(50257, 768) * 0.02
    print(f"{torch.get_num_threads()} threads; median ms, speed-up over one plain product")
    columns = [*SLICES, "one row"]
    labels = [f"slice {size}" for size in SLICES] + ["one row"]
    print(f"{'rows':>6}{'plain':>9}" + "".join(f"{label:>19}" for label in labels))
    for rows in ROWS:
        x = torch.randn(rows, 1, 768) if rows <= 4 else torch.randn(1, rows, 768)
        runs = {"plain": lambda: F.linear(x, weight)}
        for size in SLICES:
            # forward_sliced directly: OutputHead itself sends one row to forward_one_row.
            runs[size] = lambda h=sliced_head(weight, size): h.forward_sliced(x)
        if rows == 1:
            runs["one row"] = lambda h=sliced_head(weight, OutputHead.SLICE): h.forward_one_row(x)
        times = {name: [] for name in runs}
        for run in runs.values():
            run()  # warm-up
        for _ in range(args.repeats):
            order = list(runs.items())
            random.shuffle(order)
            for name, run in order:
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        plain = statistics.median(times["plain"])
        cells = [f"{statistics.median(times[c]) * 1e3:>9.1f} ({plain / statistics.median(times[c]):.2f}x)"
                 if c in times else "" for c in columns]
        print(f"{rows:>6}{plain * 1e3:>9.1f}" + "".join(f"{c:>19}" for c in cells))


if __name__ == "__main__":
    main()
