# %% [markdown]
# # Lab: configuration and model size
#
# A hands-on companion to [chapter 1, Configuration](../../chapters/01-configuration/).
# We print the book's configuration, count the parameters of every GPT-2 size from the
# configuration alone, check that count against real (tiny) PyTorch modules, and chart
# where the parameters of each size live.
#
# Run it with `python docs/labs/configuration.py`; it takes a couple of seconds.

# %%
import matplotlib.pyplot as plt

from llm_from_scratch.model import GPT2_PRESETS, GPTConfig, GPTModel, as_config

config = GPTConfig()  # the book's GPT-2 small: untied head, no query/key/value bias
print(config)
for field, value in config.to_dict().items():
    print(f"  {field:<15}{value!s:>8}")
print(f"  {'head_dim':<15}{config.head_dim:>8}   (emb_dim // n_heads)")

# %% [markdown]
# ## Counting parameters without building anything
#
# Every layer is a matrix whose shape the configuration fixes, so the parameter count is
# a formula in $V$ (`vocab_size`), $C$ (`context_length`), $d$ (`emb_dim`) and $L$
# (`n_layers`). We split each transformer block into its attention, feed-forward and
# LayerNorm parts so that the chart below can show them separately:
#
# - attention: $W_q, W_k, W_v$ ($3d^2$, plus $3d$ with `qkv_bias`) and the output
#   projection ($d^2 + d$);
# - feed-forward: $d \to 4d \to d$, that is $8d^2 + 5d$;
# - two LayerNorms: $4d$.


# %%
def count_parameters(cfg) -> dict[str, int]:
    """Parameters per component of a GPT model, from its configuration alone."""
    cfg = as_config(cfg)
    V, C, d, L = cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_layers
    return {
        "token embedding": V * d,
        "position embedding": C * d,
        "attention": L * (4 * d * d + d + (3 * d if cfg.qkv_bias else 0)),
        "feed-forward": L * (8 * d * d + 5 * d),
        "layer norms": L * 4 * d + 2 * d,  # two per block, plus the final one
        "output head": 0 if cfg.tie_weights else V * d,
    }


book = count_parameters(config)
for part, n in book.items():
    print(f"{part:<20}{n:>13,}")
print(f"{'total':<20}{sum(book.values()):>13,}")

# %% [markdown]
# ## Checking the formula against PyTorch
#
# The real 124M model takes seconds to build; a tiny one with the same structure takes
# milliseconds. For every combination of the two switches, the formula must match the
# number of parameters PyTorch reports. (With `tie_weights`, the head and the token
# embedding are one tensor, which `model.parameters()` lists once.)

# %%
for qkv_bias in (False, True):
    for tie_weights in (False, True):
        tiny = GPTConfig(vocab_size=100, context_length=16, emb_dim=32, n_heads=4,
                         n_layers=3, qkv_bias=qkv_bias, tie_weights=tie_weights)
        real = sum(p.numel() for p in GPTModel(tiny).parameters())
        formula = sum(count_parameters(tiny).values())
        verdict = "ok" if real == formula else "MISMATCH"
        print(f"qkv_bias={qkv_bias!s:<5} tie_weights={tie_weights!s:<5} "
              f"model {real:>6,}  formula {formula:>6,}  {verdict}")
        assert real == formula

# %% [markdown]
# ## The four GPT-2 sizes
#
# The published sizes share the vocabulary and context, use query/key/value biases and
# tie the output head to the token embedding. We add the book's untied 124M model as a
# fifth row for comparison.

# %%
configs = {"book 124M (untied)": config}
configs.update({name: GPTConfig.from_preset(name) for name in GPT2_PRESETS})

print(f"{'config':<20}{'emb_dim':>8}{'layers':>7}{'heads':>6}{'parameters':>16}")
for name, cfg in configs.items():
    total = sum(count_parameters(cfg).values())
    print(f"{name:<20}{cfg.emb_dim:>8}{cfg.n_layers:>7}{cfg.n_heads:>6}{total:>16,}")

# %% [markdown]
# ## Where the parameters live
#
# A stacked bar per configuration, one colour per component. In the small models the
# vocabulary (token embedding, and the head when it is not tied) is a large share; as
# width and depth grow, the blocks' $12d^2$ per layer takes over. The right-hand panel
# shows the same numbers as shares of the total.

# %%
names = list(configs)
parts = list(book)
counts = {name: count_parameters(cfg) for name, cfg in configs.items()}

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
# Starting from the book's configuration, make the model deeper (more layers) or wider
# (larger `emb_dim`, keeping 64-dimensional heads). Depth grows the count linearly;
# width grows it quadratically.

# %%
scales = [1, 2, 3, 4]
deeper = [sum(count_parameters(GPTConfig(n_layers=12 * s)).values()) / 1e6 for s in scales]
wider = [sum(count_parameters(GPTConfig(emb_dim=768 * s, n_heads=12 * s)).values()) / 1e6
         for s in scales]
for s, dp, wd in zip(scales, deeper, wider):
    print(f"x{s}: {12 * s:>2} layers -> {dp:7.1f}M   emb_dim {768 * s:>4} -> {wd:7.1f}M")

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
