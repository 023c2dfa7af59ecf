# %% [markdown]
# # Lab: shortcut connections
#
# A hands-on companion to
# [chapter 6, Shortcut connections](../../chapters/06-shortcut-connections/).
# We rebuild the chapter's deep, narrow network (layers of width 3, each `Linear` + `GELU`),
# take one backward pass with and without shortcuts, and plot the gradient that reaches
# each layer. Then we make the network deeper and watch what reaches the first layer.
#
# Run it with `python docs/labs/shortcut_connections.py`; it takes a second or two.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from llm_from_scratch.model import GELU


def layer_gradients(layer_sizes, use_shortcut, seed=123):
    """Mean |gradient| of each layer's weight after one backward pass through
    a stack of Linear + GELU layers. With use_shortcut, a layer that keeps the
    shape adds its input back. The layers draw their weights as the chapter's
    ExampleDeepNeuralNetwork does, so [3, 3, 3, 3, 3, 1] gives its numbers."""
    torch.manual_seed(seed)
    layers = [nn.Sequential(nn.Linear(n_in, n_out), GELU())
              for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])]
    x = torch.tensor([[1.0, 0.0, -1.0]])
    for layer in layers:
        out = layer(x)
        x = x + out if use_shortcut and out.shape == x.shape else out
    nn.functional.mse_loss(x, torch.tensor([[0.0]])).backward()
    return [layer[0].weight.grad.abs().mean().item() for layer in layers]


sizes = [3, 3, 3, 3, 3, 1]  # the chapter's network
profiles = {"without shortcut": layer_gradients(sizes, use_shortcut=False),
            "with shortcut": layer_gradients(sizes, use_shortcut=True)}
plain, residual = profiles.values()
for label, grads in profiles.items():  # layer 1 (nearest the input) first
    print(f"{label:<17}" + "  ".join(f"{g:.1e}" for g in grads))

# %% [markdown]
# ## Two gradient profiles
#
# The bars are on a **log scale**: each grid line is a factor of ten. Without shortcuts
# the gradient loses more than an order of magnitude between the output layer and the
# input layer; with shortcuts every layer gets a gradient of similar size.

# %%
layers = range(1, len(sizes))
width = 0.4
fig, ax = plt.subplots(figsize=(7, 4))
ax.bar([i - width / 2 for i in layers], plain, width,
       label="without shortcut", color="tab:red")
ax.bar([i + width / 2 for i in layers], residual, width,
       label="with shortcut", color="tab:blue")
ax.set_yscale("log")
ax.set_xticks(list(layers))
ax.set_xlabel("layer (1 = nearest the input)")
ax.set_ylabel("mean |gradient| of the weight")
ax.set_title("Gradient reaching each layer after one backward pass")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Deeper and deeper
#
# Now vary the depth: `n` layers, all of width 3 except the final 3 -> 1 layer (the
# chapter's network has `n = 5`). We record the gradient of the *first* layer. One network
# is one roll of the dice (a different depth is a different set of random weights), so for
# each depth we build 9 networks with seeds 0 to 8 and take the median.
#
# Without shortcuts the gradient falls exponentially with depth: a straight line going
# down on a log scale, about a factor of ten lost for every extra layer or two. With
# shortcuts it stays roughly level however deep the network gets: the identity term of
# each factor $I + J_f$ in the chain rule carries it through.

# %%
def median_first_layer_gradient(depth, use_shortcut, seeds=range(9)):
    grads = [layer_gradients([3] * depth + [1], use_shortcut, seed)[0]
             for seed in seeds]
    return torch.tensor(grads).median().item()


depths = list(range(2, 21, 2))
first_plain = [median_first_layer_gradient(n, False) for n in depths]
first_residual = [median_first_layer_gradient(n, True) for n in depths]
for n in (2, 6, 10, 14, 20):
    i = depths.index(n)
    print(f"{n:>2} layers: median first-layer gradient "
          f"{first_plain[i]:.1e} without, {first_residual[i]:.1e} with")

fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogy(depths, first_plain, "o-", color="tab:red",
            label="without shortcut")
ax.semilogy(depths, first_residual, "o-", color="tab:blue",
            label="with shortcut")
ax.set_xticks(depths)
ax.set_xlabel("number of layers")
ax.set_ylabel("mean |gradient| of layer 1's weight\n(median over 9 seeds)")
ax.set_title("The first layer's gradient vs depth")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Try it
#
# - Change the seed. The exact numbers move; does the picture?
# - Replace `GELU()` by `nn.ReLU()` or `nn.Sigmoid()` (whose slope is at most 0.25) and
#   rerun the depth sweep. Which activation makes the plain network's gradient vanish
#   fastest, and why?
# - Make the layers wider, e.g. `[16] * 8 + [1]` with an input of 16 values. Does width
#   alone rescue the plain network?
