# %% [markdown]
# # Lab: layer normalization
#
# A hands-on companion to
# [chapter 3, Layer normalization](../../chapters/03-layer-normalization/).
# We take activations whose rows have very different centres and spreads, normalise
# them with the package's `LayerNorm`, and look at the numbers before and after: as
# histograms, as per-token means and variances, and through a deep stack of layers.
# Then we see what ε (`eps`) does to vectors with very little spread.
#
# Run it with `python docs/labs/layer_normalization.py`; it takes a couple of
# seconds. Things to try are suggested at the end.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from llm_from_scratch.model import LayerNorm

torch.manual_seed(123)
EMB_DIM = 768  # try 8 or 64: noisier statistics, the same normalisation
EPS = 1e-5  # try 1e-2 and watch the variances after normalisation drop below 1

# %% [markdown]
# ## Activations that drift
#
# Eight "token vectors" of width `EMB_DIM`, each with its own centre and spread, as
# activations deep inside an unnormalised network might have. Layer normalization
# computes one mean and one variance per row (per token), along the last axis.

# %%
num_tokens = 8
# a different mean per token, and a standard deviation from 0.1 to 5
centres = torch.linspace(-3.0, 4.0, num_tokens).unsqueeze(-1)
spreads = torch.logspace(-1, 0.7, num_tokens).unsqueeze(-1)
x = centres + spreads * torch.randn(num_tokens, EMB_DIM)

ln = LayerNorm(EMB_DIM, eps=EPS)
with torch.no_grad():
    y = ln(x)

mean_before, var_before = x.mean(dim=-1), x.var(dim=-1, unbiased=False)
mean_after, var_after = y.mean(dim=-1), y.var(dim=-1, unbiased=False)


def fmt(v: float) -> str:
    # -0.0000 is only rounding noise around zero
    return f"{v:9.4f}".replace("-0.0000", " 0.0000")


print("token   mean before   var before   mean after   var after")
for t in range(num_tokens):
    print(f"{t:5d}  {fmt(mean_before[t])}    {fmt(var_before[t])}   "
          f"{fmt(mean_after[t])}   {fmt(var_after[t])}")

# %% [markdown]
# ## Before and after, as pictures
#
# Left: the values of all tokens, each token in its own colour. Before, the tokens live
# in different places on the axis and with different widths; after, they all sit on top
# of one another around 0 with unit spread. Right: the per-token statistics.

# %%
fig, axes = plt.subplots(2, 2, figsize=(12, 7))
for t in range(num_tokens):
    axes[0, 0].hist(x[t].numpy(), bins=60, histtype="step", label=f"token {t}")
    axes[1, 0].hist(y[t].numpy(), bins=60, histtype="step")
axes[0, 0].set_title("values before LayerNorm")
axes[1, 0].set_title("values after LayerNorm")
axes[0, 0].legend(fontsize=7, ncol=2)
axes[1, 0].set_xlabel("activation value")

tokens = torch.arange(num_tokens)
width = 0.4
axes[0, 1].bar(tokens - width / 2, mean_before, width, label="before")
axes[0, 1].bar(tokens + width / 2, mean_after, width, label="after")
axes[0, 1].axhline(0.0, color="black", linewidth=0.8)
axes[0, 1].set_title("mean of each token vector")
axes[0, 1].legend()
axes[1, 1].bar(tokens - width / 2, var_before, width, label="before")
axes[1, 1].bar(tokens + width / 2, var_after, width, label="after")
axes[1, 1].axhline(1.0, color="black", linewidth=0.8, linestyle="--")
axes[1, 1].set_yscale("log")
axes[1, 1].set_title("variance of each token vector (log scale)")
axes[1, 1].set_xlabel("token")
axes[1, 1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The book's example
#
# Two inputs with five features, through `Linear(5, 6)` and a ReLU, then normalised.
# The ReLU leaves every value at or above zero, so both rows start with a positive mean
# and a small variance. These are the biased variances `LayerNorm` uses (dividing by
# 6); the book first prints torch's default unbiased ones, 0.0231 and 0.0398.

# %%
torch.manual_seed(123)
batch_example = torch.randn(2, 5)
layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
with torch.no_grad():
    out = layer(batch_example)
    out_norm = LayerNorm(6, eps=EPS)(out)
for name, t in [("after Linear+ReLU", out), ("after LayerNorm  ", out_norm)]:
    means = ", ".join(fmt(m).strip() for m in t.mean(dim=-1))
    variances = ", ".join(fmt(v).strip() for v in t.var(dim=-1, unbiased=False))
    print(f"{name}  means [{means}]  variances [{variances}]")

# %% [markdown]
# ## Through a deep stack
#
# Twenty-four random linear layers whose weights stretch vectors slightly (gain 1.25)
# or shrink them slightly (gain 0.8). Without normalisation the spread of the
# activations grows or fades exponentially with depth; with a `LayerNorm` after each
# layer it stays at 1.

# %%
torch.manual_seed(123)
width = 64
h_small = h_big = h_norm = torch.randn(16, width)
norm = LayerNorm(width, eps=EPS)
depths = []
stds = {"gain 0.8": [], "gain 1.25": [], "gain 1.25 + LayerNorm": []}
with torch.no_grad():
    for depth in range(1, 25):
        w = torch.randn(width, width) / width**0.5
        h_small = h_small @ (0.8 * w)
        h_big = h_big @ (1.25 * w)
        h_norm = norm(h_norm @ (1.25 * w))
        depths.append(depth)
        for key, h in zip(stds, (h_small, h_big, h_norm)):
            stds[key].append(h.std().item())
for key, values in stds.items():
    print(f"{key:<22} std after 24 layers: {values[-1]:10.4f}")

fig, ax = plt.subplots(figsize=(7, 4))
for key, values in stds.items():
    ax.plot(depths, values, marker=".", label=key)
ax.set_yscale("log")
ax.set_xlabel("depth (number of layers)")
ax.set_ylabel("standard deviation of the activations")
ax.set_title("Activation scale through a deep stack")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What eps does
#
# With scale 1 and shift 0, a vector of variance σ² comes out with variance
# σ² / (σ² + ε). For ordinary activations that is 1 to many decimals; for vectors
# that are almost constant, ε takes over and the output shrinks towards 0 instead of
# blowing noise up to unit size. The dots are measured with `LayerNorm`, the lines
# are the formula.

# %%
torch.manual_seed(123)
sigma2 = torch.logspace(-9, 1, 21)
base = torch.randn(1, EMB_DIM)
base = (base - base.mean()) / base.std(unbiased=False)  # mean 0, variance 1
fig, ax = plt.subplots(figsize=(7, 4))
for eps in (1e-2, 1e-5, 1e-8):
    with torch.no_grad():
        ln_eps = LayerNorm(EMB_DIM, eps=eps)
        measured = [ln_eps(s.sqrt() * base).var(unbiased=False).item()
                    for s in sigma2]
    ax.plot(sigma2, sigma2 / (sigma2 + eps), label=f"eps = {eps:.0e}")
    ax.scatter(sigma2, measured, s=12)
    print(f"eps = {eps:.0e}: output variance {measured[0]:.2e} for input "
          f"variance {sigma2[0]:.0e}, {measured[-1]:.4f} for input variance "
          f"{sigma2[-1]:.0f}")
ax.set_xscale("log")
ax.set_xlabel("variance of the input vector")
ax.set_ylabel("variance after LayerNorm")
ax.set_title("eps only matters for (almost) constant vectors")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Things to try
#
# - Set `EMB_DIM = 8` at the top and rerun: the statistics of each token are now taken
#   over only eight numbers, yet every row still comes out with mean 0 and variance 1.
# - Set `EPS = 1e-2`: the book's example now ends with variances visibly below 1.
# - In the deep stack, replace `LayerNorm` by `torch.nn.LayerNorm(width)`: the curve
#   does not move, because the two compute the same function
#   (`tests/test_layernorm_gelu.py` checks it, values and gradients).
