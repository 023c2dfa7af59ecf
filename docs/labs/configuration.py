# %% [markdown]
# # Lab: configuration and model size
#
# A hands-on companion to
# [chapter 1, Configuration](../../chapters/01-configuration/). We print the book's
# configuration, count the parameters of every GPT-2 size from its configuration,
# and chart where the parameters of each size live.
#
# Run it with `python docs/labs/configuration.py`; it takes a couple of seconds.

# %%
import matplotlib.pyplot as plt
import torch

from llm_from_scratch.model import (
    GPT2_PRESETS, GPTConfig, GPTModel, parameter_ledger)

config = GPTConfig()  # the book's GPT-2 small: untied head, no qkv bias
print(config)
for field, value in config.to_dict().items():
    print(f"  {field:<15}{value!s:>8}")
print(f"  {'head_dim':<15}{config.head_dim:>8}   (emb_dim // n_heads)")

# %% [markdown]
# ## Counting parameters without allocating them
#
# Every layer is a matrix whose shape the configuration fixes. A model built on
# PyTorch's `meta` device gets those shapes but no storage, so even GPT-2 XL is
# "built" with no memory, in a fraction of a second once the first has paid a
# one-off second. The package's `parameter_ledger` then sorts its parameters by
# component ([chapter 8](../../chapters/08-gpt-model/#the-parameter-ledger) derives
# the same numbers by hand).


# %%
def by_component(cfg) -> dict[str, int]:
    """Parameters per component of GPTModel(cfg), built without storage."""
    with torch.device("meta"):
        return parameter_ledger(GPTModel(cfg))


book = by_component(config)
for part, n in book.items():
    print(f"{part:<20}{n:>13,}")
print(f"{'total':<20}{sum(book.values()):>13,}")

# %% [markdown]
# ## The four GPT-2 sizes
#
# The published sizes share the vocabulary and context, use query/key/value biases
# and tie the output head to the token embedding. We add the book's untied 124M
# model as a fifth row for comparison.

# %%
configs = {"book 124M (untied)": config}
configs.update({name: GPTConfig.from_preset(name) for name in GPT2_PRESETS})

print(f"{'config':<20}{'emb_dim':>8}{'layers':>7}{'heads':>6}"
      f"{'parameters':>16}")
for name, cfg in configs.items():
    total = sum(by_component(cfg).values())
    print(f"{name:<20}{cfg.emb_dim:>8}{cfg.n_layers:>7}{cfg.n_heads:>6}"
          f"{total:>16,}")

# %% [markdown]
# ## Where the parameters live
#
# A stacked bar per configuration, one colour per component. In the small models
# the vocabulary (token embedding, and the head when it is not tied) is a large
# share; as width and depth grow, the blocks' 12·d² parameters per layer take over.
# The right-hand panel shows the same numbers as shares of the total.

# %%
names = list(configs)
parts = list(book)
counts = {name: by_component(cfg) for name, cfg in configs.items()}

fig, (ax_abs, ax_rel) = plt.subplots(1, 2, figsize=(12, 4.5))
bottom_abs = [0.0] * len(names)
bottom_rel = [0.0] * len(names)
for part in parts:
    millions = [counts[n][part] / 1e6 for n in names]
    shares = [100 * counts[n][part] / sum(counts[n].values()) for n in names]
    ax_abs.bar(names, millions, bottom=bottom_abs, label=part)
    ax_rel.bar(names, shares, bottom=bottom_rel, label=part)
    bottom_abs = [b + m for b, m in zip(bottom_abs, millions)]
    bottom_rel = [b + s for b, s in zip(bottom_rel, shares)]

ax_abs.set_ylabel("parameters (millions)")
ax_abs.set_title("Parameters by component")
ax_rel.set_ylabel("share of all parameters (%)")
ax_rel.set_title("The same, as shares")
for ax in (ax_abs, ax_rel):
    ax.tick_params(axis="x", labelrotation=30)
ax_rel.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Depth against width
#
# Starting from the book's configuration, make the model deeper (more layers) or
# wider (larger `emb_dim`, keeping 64-dimensional heads). Depth grows the count
# linearly; width grows it quadratically.

# %%
scales = [1, 2, 3, 4]
deeper = [sum(by_component(GPTConfig(n_layers=12 * s)).values()) / 1e6
          for s in scales]
wider = [sum(by_component(GPTConfig(emb_dim=768 * s, n_heads=12 * s)).values())
         / 1e6 for s in scales]
for s, dp, wd in zip(scales, deeper, wider):
    print(f"x{s}: {12 * s:>2} layers -> {dp:7.1f}M   "
          f"emb_dim {768 * s:>4} -> {wd:7.1f}M")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(scales, deeper, marker="o", label="deeper: n_layers x s")
ax.plot(scales, wider, marker="s", label="wider: emb_dim x s")
ax.set_xlabel("scale factor s")
ax.set_ylabel("parameters (millions)")
ax.set_xticks(scales)
ax.set_title("Growing the book's model")
ax.legend()
fig.tight_layout()
plt.show()
