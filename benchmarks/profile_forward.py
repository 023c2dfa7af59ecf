"""Where a GPT-2 small forward pass spends its time, for our model and transformers'.

    python benchmarks/profile_forward.py [BATCH TOKENS]      # default: 4 256

Prints, per model, the self CPU time of the main operator kinds from torch.profiler:
the matrix multiplications (the FLOPs), attention, and the rest (norms, GELU, adds,
copies). It explains the model-FLOPs utilisation the benchmark reports: what is left
after the matmuls is the bound on how much faster either model can get here.
"""

import sys
from collections import defaultdict

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llm_from_scratch.model import GPTConfig, GPTModel

KINDS = {
    "aten::addmm": "matmul", "aten::mm": "matmul", "aten::bmm": "matmul",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
}


def profile(run) -> dict:
    run()  # warm-up
    with torch.profiler.profile() as prof:
        run()
    totals = defaultdict(float)
    for event in prof.key_averages():
        totals[KINDS.get(event.key, "other")] += event.self_cpu_time_total / 1e6
    return totals


def main() -> None:
    batch, tokens = (int(a) for a in sys.argv[1:3]) if len(sys.argv) == 3 else (4, 256)
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    ours = GPTModel(GPTConfig.from_preset("gpt2-small")).eval()
    hf = GPT2LMHeadModel(GPT2Config(attn_implementation="sdpa")).eval()
    ids = torch.randint(0, 50257, (batch, tokens))
    print(f"self CPU seconds of one ({batch}, {tokens}) forward pass")
    print(f"{'':<14}{'matmul':>8}{'attention':>11}{'other':>8}{'total':>8}   matmul share")
    for name, run in [("ours", lambda: ours(ids)), ("transformers", lambda: hf(ids).logits)]:
        t = profile(run)
        total = sum(t.values())
        print(f"{name:<14}{t['matmul']:>8.3f}{t['attention']:>11.3f}{t['other']:>8.3f}{total:>8.3f}"
              f"   {t['matmul'] / total:.0%}")


if __name__ == "__main__":
    main()
