"""What bounds decoding with the KV cache: memory bandwidth, and per-token overhead.

    python benchmarks/decode_bandwidth.py

Prints (medians of repeated runs):
- how fast this machine reads memory with all threads (the sum of a 1 GB tensor);
- how fast one matrix-vector product reads GPT-2's 154 MB vocabulary weight, plain and
  through OutputHead's one-row path (a batched product over one part per thread);
- the time per generated token of GPT-2 small, and of a model with the same 12 blocks
  but only 64 wide with 64 tokens, whose time is almost all Python and operator overhead.
"""

import statistics
import time

import torch
import torch.nn.functional as F

from llm_from_scratch.generate import generate
from llm_from_scratch.model import GPTConfig, GPTModel


def median_s(fn, repeats: int = 9) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    print(f"{torch.get_num_threads()} threads")
    big = torch.ones(256_000_000)
    print(f"read with all threads (sum of 1 GB):      {big.numel() * 4 / median_s(big.sum) / 1e9:5.1f} GB/s")
    del big

    model = GPTModel(GPTConfig.from_preset("gpt2-small")).eval()
    head, row = model.out_head, torch.randn(1, 1, 768)
    size = head.weight.numel() * 4
    plain = median_s(lambda: F.linear(row, head.weight))
    split = median_s(lambda: head.forward_one_row(row))
    print(f"head weight, one plain product:           {size / plain / 1e9:5.1f} GB/s ({plain * 1e3:.1f} ms)")
    print(f"head weight, OutputHead.forward_one_row:  {size / split / 1e9:5.1f} GB/s ({split * 1e3:.1f} ms)"
          f", {plain / split:.2f}x")

    prompt = torch.randint(0, 50257, (1, 8))
    # 64 wide and a 64-token vocabulary: almost nothing to read, so what is left is overhead.
    tiny = GPTModel(GPTConfig(vocab_size=64, context_length=1024, emb_dim=64, n_heads=4, n_layers=12)).eval()
    for name, m, ids in [("GPT-2 small", model, prompt), ("12 blocks, 64 wide", tiny, prompt % 64)]:
        per_token = median_s(lambda: generate(m, ids, 64), repeats=3) / 64
        print(f"greedy decoding with the cache, {name + ':':<20}{per_token * 1e3:5.1f} ms per token")


if __name__ == "__main__":
    main()
