# %% [markdown]
# # Lab: GELU vs ReLU
#
# A hands-on companion to
# [chapter 4, GELU vs ReLU](../../chapters/04-activation-functions/).
# We draw the book's figure of the two activation functions, add their derivatives
# (computed with autograd, the way training computes them), zoom in on the gap between
# GPT-2's tanh approximation and the exact GELU, and count how often each function lets
# gradient through for the inputs a real layer sees.
#
# Run it with `python docs/labs/activation_functions.py`; it takes a couple of seconds.

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.model import GELU

gelu = GELU()  # the package's module: the book's tanh approximation
relu = nn.ReLU()

# %% [markdown]
# ## The book's figure
#
# The two functions side by side, from −3 to 3, as the book plots them in §4.3: ReLU
# is piecewise linear, zero for every negative input; GELU is smooth and dips slightly
# below zero before it rises.

# %%
x_book = torch.linspace(-3, 3, 100)
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for ax, fn, label in zip(axes, (gelu, relu), ("GELU", "ReLU")):
    ax.plot(x_book.numpy(), fn(x_book).numpy())
    ax.set_title(f"{label} activation function")
    ax.set_xlabel("x")
    ax.set_ylabel(f"{label}(x)")
    ax.grid(True)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The curves and their slopes
#
# We evaluate both functions on a grid and ask autograd for f′(x) at every point:
# summing the outputs and differentiating gives each element's own derivative, because
# every output depends on its input only.

# %%
x = torch.linspace(-4, 4, 801, requires_grad=True)
relu_y = torch.relu(x)
gelu_y = gelu(x)
(relu_slope,) = torch.autograd.grad(relu_y.sum(), x)
(gelu_slope,) = torch.autograd.grad(gelu_y.sum(), x)
x_np = x.detach().numpy()

lowest = gelu_y.argmin()
print(f"GELU's minimum: {gelu_y[lowest].item():.4f} at x = {x_np[lowest]:.2f}")
print(f"GELU's slope ranges from {gelu_slope.min().item():.4f} "
      f"to {gelu_slope.max().item():.4f}")
print(f"ReLU's slope takes only the values {sorted(set(relu_slope.tolist()))}")

fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(12, 4.5))
ax_f.plot(x_np, relu_y.detach().numpy(), label="ReLU")
ax_f.plot(x_np, gelu_y.detach().numpy(), label="GELU (tanh approximation)")
ax_f.set_title("Activation functions")
ax_f.set_xlabel("x")
ax_f.set_ylabel("f(x)")
ax_d.plot(x_np, relu_slope.numpy(), label="ReLU'")
ax_d.plot(x_np, gelu_slope.numpy(), label="GELU'")
ax_d.set_title("Derivatives (autograd)")
ax_d.set_xlabel("x")
ax_d.set_ylabel("f'(x)")
for ax in (ax_f, ax_d):
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Close to zero
#
# The interesting region is −3 < x < 1: ReLU is flat at 0 up to the corner, GELU dips
# to about −0.17 and comes back. Its slope is negative left of the dip, which is where
# the curve falls before rising again.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
near = (x_np > -3.5) & (x_np < 1.0)
ax.plot(x_np[near], relu_y.detach().numpy()[near], label="ReLU")
ax.plot(x_np[near], gelu_y.detach().numpy()[near], label="GELU")
ax.plot(x_np[near], gelu_slope.numpy()[near], linestyle="--", label="GELU'")
ax.axhline(0.0, color="black", linewidth=0.6)
ax.set_xlabel("x")
ax.set_title("Where the two differ")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The tanh approximation against the exact GELU
#
# Exact GELU is x·Φ(x) = x/2 · (1 + erf(x/√2)), which `F.gelu(x)` computes; GPT-2 used
# the tanh formula. In float64 on a grid with steps of 10⁻⁴, the gap is largest at
# x ≈ ±2.7 and never exceeds 4.7 × 10⁻⁴. The sign changes along the way: the
# approximation is a little above the exact curve in some places and a little below in
# others. PyTorch's fused `F.gelu(x, approximate="tanh")` computes our formula; in
# float64 the two differ by about 10⁻⁸, because the book takes √(2/π) as a float32
# tensor.

# %%
grid = torch.linspace(-6, 6, 120001, dtype=torch.float64)
exact = grid * 0.5 * (1.0 + torch.erf(grid / math.sqrt(2.0)))
# our exact formula is torch's exact GELU
assert torch.allclose(exact, F.gelu(grid), rtol=0, atol=1e-12)
signed_gap = gelu(grid) - exact
worst = signed_gap.abs().argmax()
print(f"largest |tanh GELU - exact GELU|: {signed_gap.abs().max().item():.2e} "
      f"at x = ±{grid[worst].abs().item():.2f}")
fused_gap = (gelu(grid) - F.gelu(grid, approximate="tanh")).abs().max().item()
print(f"ours vs F.gelu(approximate='tanh'): largest difference {fused_gap:.0e}")

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(grid.numpy(), signed_gap.numpy())
for sign in (-1, 1):
    ax.axvline(sign * grid[worst].abs().item(), color="grey", linestyle=":")
ax.axhline(0.0, color="black", linewidth=0.6)
ax.set_xlabel("x")
ax.set_ylabel("tanh GELU − exact GELU")
ax.set_title("Error of GPT-2's tanh approximation")
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## How much gradient gets through?
#
# Feed both functions the kind of inputs a hidden layer sees (roughly standard normal,
# here shifted down by `BIAS` as if the layer's biases had drifted negative) and count
# the inputs whose derivative is exactly zero. For ReLU that is every negative input.
# For GELU it is only inputs far out in the tail: below about −5.16, float32's tanh
# rounds to exactly −1, and output and gradient become exactly 0. (The exact GELU,
# `torch.nn.GELU()`, holds out until about −6.15.)

# %%
torch.manual_seed(123)
for BIAS in (0.0, -1.0, -3.0):  # try other shifts
    pre = (torch.randn(100_000) + BIAS).requires_grad_()
    (relu_g,) = torch.autograd.grad(torch.relu(pre).sum(), pre)
    (gelu_g,) = torch.autograd.grad(gelu(pre).sum(), pre)
    dead_relu = 100 * (relu_g == 0).float().mean()
    dead_gelu = 100 * (gelu_g == 0).float().mean()
    print(f"shift {BIAS:+.1f}: zero gradient for {dead_relu:5.1f}% of inputs "
          f"with ReLU, {dead_gelu:5.1f}% with GELU; mean |gradient| "
          f"{relu_g.abs().mean():.3f} vs {gelu_g.abs().mean():.3f}")

fig, ax = plt.subplots(figsize=(7, 4))
ax.hist(relu_g.numpy(), bins=60, alpha=0.6, label="ReLU'")
ax.hist(gelu_g.numpy(), bins=60, alpha=0.6, label="GELU'")
ax.set_yscale("log")
ax.set_xlabel("derivative at the input")
ax.set_ylabel("number of inputs (log scale)")
ax.set_title(f"Derivatives for inputs ~ N({BIAS:+.0f}, 1)")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Things to try
#
# - Replace `gelu` by `torch.nn.GELU()` (the exact version) in the first plot: the
#   curves do not visibly move, the gap is under 5 × 10⁻⁴.
# - Plot `x * torch.sigmoid(1.702 * x)`, another classic GELU approximation, against
#   the exact curve with the gap plot above: is it better or worse than tanh?
# - Change the shifts in the last cell and watch ReLU's share of zero gradients climb.
