"""What bounds decoding with the KV cache: memory bandwidth, and per-token overhead.

    python benchmarks/decode_bandwidth.py

Prints (medians of repeated runs):
- how fast this machine reads memory with all threads (the sum of a 1 GB tensor);
- how fast single-row products read GPT-2's weights, plain (nn.Linear's product) and
  through Linear's one-row path (a batched product over one part per thread): the
  154 MB vocabulary head, and the 72 layers of the 12 blocks (340 MB) one after another;
- the time per generated token (side by side, alternating) of GPT-2 small with the
  one-row path and without it, and of a model with the same 12 blocks but only 64 wide,
  whose time is almost all Python and operator overhead, as built (its layers are too
  small for the one-row path) and with the path forced on every layer.
"""

import contextlib
import statistics
import time
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.generate import generate
from llm_from_scratch.model import GPTConfig, GPTModel, Linear


def median_s(fn, repeats: int = 9) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_rate(name: str, layers, repeats: int = 9) -> None:
    """Time one row through each layer, plain and one-row path; print GB/s."""
    size = sum(layer.weight.numel() * 4 for layer in layers)
    rows = [torch.randn(1, 1, layer.in_features) for layer in layers]
    plain = median_s(lambda: [F.linear(x, l.weight, l.bias) for l, x in zip(layers, rows)], repeats)
    split = median_s(lambda: [l.forward_one_row(x) for l, x in zip(layers, rows)], repeats)
    print(f"{name}, plain products:     {size / plain / 1e9:5.1f} GB/s ({plain * 1e3:5.1f} ms)")
    print(f"{name}, forward_one_row:    {size / split / 1e9:5.1f} GB/s ({split * 1e3:5.1f} ms), "
          f"{plain / split:.2f}x")


def main() -> None:
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    print(f"{torch.get_num_threads()} threads")
    big = torch.ones(256_000_000)
    print(f"read with all threads (sum of 1 GB):    {big.numel() * 4 / median_s(big.sum) / 1e9:5.1f} GB/s")
    del big

    model = GPTModel(GPTConfig.from_preset("gpt2-small")).eval()
    read_rate("head weight (154 MB)", [model.out_head])
    read_rate("block layers (340 MB)", [m for m in model.trf_blocks.modules() if isinstance(m, Linear)])

    prompt = torch.randint(0, 50257, (1, 8))
    # 64 wide and a 64-token vocabulary: almost nothing to read, so what is left is overhead.
    # Its layers are below ONE_ROW_MIN_WEIGHTS; forcing the one-row path on them shows why.
    tiny = GPTModel(GPTConfig(vocab_size=64, context_length=1024, emb_dim=64, n_heads=4, n_layers=12)).eval()
    every_weight_split = mock.patch.object(Linear, "ONE_ROW_MIN_WEIGHTS", 0)
    plain_products = mock.patch.object(Linear, "forward_one_row", nn.Linear.forward)
    runs = [
        ("GPT-2 small, one-row path", model, prompt, contextlib.nullcontext()),
        ("GPT-2 small, plain products", model, prompt, plain_products),
        ("12 blocks 64 wide, as built", tiny, prompt % 64, contextlib.nullcontext()),
        ("12 blocks 64 wide, all split", tiny, prompt % 64, every_weight_split),
    ]
    per_token = {name: [] for name, *_ in runs}
    for r in range(6):  # alternate, so that all see the same machine
        for name, m, ids, patch in runs if r % 2 == 0 else reversed(runs):
            with patch:
                start = time.perf_counter()
                generate(m, ids, 64)
                per_token[name].append((time.perf_counter() - start) / 64)
    ms = {name: statistics.median(times) * 1e3 for name, times in per_token.items()}
    for name, value in ms.items():
        print(f"greedy decoding with the cache, {name + ':':<30}{value:5.1f} ms per token")
    print(f"  GPT-2 small: the one-row path is {ms['GPT-2 small, plain products'] / ms['GPT-2 small, one-row path']:.2f}x"
          f" faster; 64 wide: splitting every layer is "
          f"{ms['12 blocks 64 wide, all split'] / ms['12 blocks 64 wide, as built']:.2f}x slower")


if __name__ == "__main__":
    main()
