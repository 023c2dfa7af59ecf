# %% [markdown]
# # Lab: the feed-forward network
#
# A hands-on companion to
# [chapter 5, Feed-forward network](../../chapters/05-feed-forward-network/).
# We follow a batch through `FeedForward` layer by layer, look at what GELU does to the
# 3072 hidden activations, check that the network really treats every position on its
# own, and chart how its parameter count grows with the model width.
#
# Run it with `python docs/labs/feed_forward_network.py`; every cell takes well under a
# second.

# %%
import matplotlib.pyplot as plt
import torch

from llm_from_scratch.model import FeedForward, GPTConfig

torch.manual_seed(123)
cfg = GPTConfig()
ffn = FeedForward(cfg)

# Inside GPT the FFN reads the output of a LayerNorm: vectors with mean 0 and variance 1
# per token. Standard normal noise is a fair stand-in.
x = torch.randn(2, 4, cfg.emb_dim)  # (batch, tokens, emb_dim)

expand, gelu, project = ffn.layers
with torch.no_grad():
    hidden = expand(x)  # W1 x + b1
    activated = gelu(hidden)  # GELU(W1 x + b1)
    out = project(activated)  # W2 GELU(W1 x + b1) + b2

steps = [("input", x), ("Linear 1", hidden), ("GELU", activated),
         ("Linear 2", out)]
for name, t in steps:
    shape = str(tuple(t.shape))
    print(f"{name:<9} shape {shape:<14} "
          f"mean {t.mean():+.3f}  std {t.std():.3f}")

# %% [markdown]
# ## What GELU does to the hidden layer
#
# Before GELU the 3072 hidden pre-activations of each token are spread roughly
# symmetrically around zero. GELU lets the positive ones through almost unchanged and
# squeezes the whole negative half into a narrow band just below zero: GELU never goes
# below its minimum of about -0.17. So each hidden unit is a soft switch: clearly "on"
# when its pattern is present, close to "off" otherwise.

# %%
before = hidden.flatten()
after = activated.flatten()
print(f"hidden values:           {before.numel():,}")
print(f"negative before GELU:    {(before < 0).float().mean():.1%}")
print(f"range before GELU:       [{before.min():.4f}, {before.max():.4f}]")
print(f"range after GELU:        [{after.min():.4f}, {after.max():.4f}]")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5),
                               sharex=True, sharey=True)
ax1.hist(before.numpy(), bins=80, color="tab:blue")
ax1.set_title("hidden pre-activations  $W_1x + b_1$")
ax1.set_xlabel("value")
ax1.set_ylabel("count")
ax2.hist(after.numpy(), bins=80, color="tab:orange")
ax2.set_title("after GELU")
ax2.set_xlabel("value")
for ax in (ax1, ax2):
    ax.axvline(0.0, color="black", linewidth=0.8)
fig.suptitle("The 2 x 4 x 3072 hidden activations of one FeedForward")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Position-wise, checked
#
# The same weights act on every position and no position sees another. So running the
# whole sequence at once, or each token on its own, gives the same numbers (up to float32
# rounding), and the output at one position cannot depend on any other position.

# %%
with torch.no_grad():
    whole = ffn(x)
    one_by_one = torch.stack([ffn(x[:, t]) for t in range(x.shape[1])], dim=1)
    shuffled = ffn(x[:, [3, 2, 1, 0]])  # reverse the token order
reversed_whole = whole[:, [3, 2, 1, 0]]
print("whole == one by one:             ",
      torch.allclose(whole, one_by_one, atol=1e-5))
print("reversing tokens reverses outputs:",
      torch.allclose(shuffled, reversed_whole, atol=1e-5))

# %% [markdown]
# ## Parameters grow with the square of the width
#
# With hidden width $4d$ the FFN has $8d^2 + 5d$ parameters. We build it for each GPT-2
# width on PyTorch's `meta` device (shapes only, no memory) and plot the counts
# against the formula.

# %%
gpt2_widths = {"small": 768, "medium": 1024, "large": 1280, "xl": 1600}
widths = [64, 128, 256, 384, 512, 768, 1024, 1280, 1600]
counts = []
for d in widths:
    with torch.device("meta"):
        module = FeedForward(GPTConfig(emb_dim=d, n_heads=1))
    counts.append(sum(p.numel() for p in module.parameters()))
    assert counts[-1] == 8 * d * d + 5 * d
for name, d in gpt2_widths.items():
    n = counts[widths.index(d)]
    print(f"gpt2-{name:<7} emb_dim {d:>5}:  {n:>12,} parameters per FFN")

fine = torch.linspace(32, 1700, 200)
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(fine, (8 * fine**2 + 5 * fine) / 1e6, color="lightgray",
        label="$8d^2 + 5d$")
ax.plot(widths, [c / 1e6 for c in counts], "o", color="tab:blue",
        label="counted")
for name, d in gpt2_widths.items():
    ax.annotate(f"gpt2-{name}", (d, counts[widths.index(d)] / 1e6),
                textcoords="offset points", xytext=(-10, 8), ha="right")
ax.set_xlabel("emb_dim $d$")
ax.set_ylabel("parameters per FFN (millions)")
ax.set_title("FeedForward parameters vs width")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Try it
#
# - Replace `torch.randn` by `torch.rand` (values in $[0, 1)$, all positive) and watch the
#   hidden histogram narrow and shift. Why does a LayerNorm before the FFN help?
# - Doubling `emb_dim` multiplies the FFN's size by about four. What does doubling the
#   number of tokens do to it?
