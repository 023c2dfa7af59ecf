# %% [markdown]
# # Lab: GPT model assembly, the parameter ledger
#
# A hands-on companion to
# [chapter 8, GPT model assembly](../../chapters/08-gpt-model/).
# The chapter prints where GPT-2 small's parameters live; here we chart it. We count every
# parameter of `GPTModel` by component, with the book's separate output head (163M) and
# with GPT-2's tied head (124M), see how the picture changes across the four GPT-2 sizes,
# and what all of it costs in memory.
#
# All models here are built on PyTorch's `meta` device: every parameter gets its shape
# and dtype but no storage, so even GPT-2 XL (1.5 billion parameters) is "built" with no
# memory and, after a one-off second for the first one, in a fraction of a second. Run
# it with `python docs/labs/gpt_model_assembly.py`.

# %%
import matplotlib.pyplot as plt
import torch

from llm_from_scratch.model import GPTConfig, GPTModel, parameter_ledger


def ledger(cfg) -> dict[str, int]:
    """Parameters per component of GPTModel(cfg), built on the meta device."""
    with torch.device("meta"):
        return parameter_ledger(GPTModel(cfg))


untied = ledger(GPTConfig())
tied = ledger(GPTConfig(tie_weights=True))
COMPONENTS = list(untied)  # token embedding, position embedding, attention, ...

print(f"{'component':<20}{'untied (book)':>15}{'tied (GPT-2)':>15}")
for row in COMPONENTS:
    print(f"{row:<20}{untied[row]:>15,}{tied[row]:>15,}")
print(f"{'total':<20}{sum(untied.values()):>15,}{sum(tied.values()):>15,}")

# %% [markdown]
# ## Component by component
#
# The bars compare the two variants row by row. Everything is identical except the
# output head: untied, it is a second 50257 × 768 matrix as large as the token
# embedding; tied, it *is* the token embedding and adds nothing. The feed-forward
# networks are the largest item of all (8d² per block against attention's 4d²), and the
# layer norms are too small to see.

# %%
fig, ax = plt.subplots(figsize=(9, 4.5))
y = range(len(COMPONENTS))
height = 0.38
ax.barh([i - height / 2 for i in y], [untied[r] / 1e6 for r in COMPONENTS], height,
        label=f"untied head: {sum(untied.values()) / 1e6:.1f}M", color="tab:blue")
ax.barh([i + height / 2 for i in y], [tied[r] / 1e6 for r in COMPONENTS], height,
        label=f"tied head: {sum(tied.values()) / 1e6:.1f}M", color="tab:orange")


def label(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 100_000 else f"{n:,}"


for i, row in enumerate(COMPONENTS):
    ax.text(untied[row] / 1e6 + 0.5, i - height / 2, label(untied[row]), va="center", fontsize=8)
    ax.text(tied[row] / 1e6 + 0.5, i + height / 2, label(tied[row]), va="center", fontsize=8)
ax.set_yticks(list(y), COMPONENTS)
ax.invert_yaxis()
ax.set_xlabel("parameters (millions)")
ax.set_xlim(0, 65)
ax.set_title("GPT-2 small (default GPTConfig): parameters by component")
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Embeddings, blocks, head
#
# Grouping the rows into the three parts of the model shows why tying matters so much at
# this size: with a separate head, almost half of GPT-2 small is vocabulary (a table in
# and a table out), and only about half is the transformer blocks that do the thinking.

# %%
PARTS = ["embeddings", "blocks + final norm", "output head"]
COLORS = {"embeddings": "tab:green", "blocks + final norm": "tab:purple", "output head": "tab:red"}


def three_parts(counts: dict) -> dict:
    return {
        "embeddings": counts["token embedding"] + counts["position embedding"],
        "blocks + final norm": sum(counts[r] for r in ("attention", "feed-forward",
                                                       "layer norms", "final norm")),
        "output head": counts["output head"],
    }


fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
variants = [("untied head (the book)", untied), ("tied head (GPT-2)", tied)]
for ax, (title, counts) in zip(axes, variants):
    parts = {k: v for k, v in three_parts(counts).items() if v > 0}  # tied: no head of its own
    total = sum(parts.values())
    for part, n in parts.items():
        print(f"{title:<24}{part:<22}{n:>13,}  {n / total:6.1%}")
    ax.pie(list(parts.values()), labels=[f"{k}\n{v / 1e6:.1f}M" for k, v in parts.items()],
           colors=[COLORS[k] for k in parts], autopct="%1.1f%%", startangle=90,
           counterclock=False, textprops={"fontsize": 9})
    ax.set_title(f"{title}\n{total / 1e6:.1f}M parameters", fontsize=11)
fig.text(0.5, 0.02, "tied: the output head is the token embedding, so it adds no parameters",
         ha="center", fontsize=9)
plt.tight_layout(rect=(0, 0.05, 1, 1))
plt.show()

# %% [markdown]
# ## Across the GPT-2 sizes
#
# The vocabulary tables grow with the width $d$ only ($V d$), while the blocks grow with
# $L \cdot 12 d^2$. So the bigger the model, the smaller the share of the embeddings.
# Here are OpenAI's four published sizes (tied head, biases in the query/key/value
# projections), each counted from a meta-device model.

# %%
sizes = ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"]
shares = {}
for name in sizes:
    cfg = GPTConfig.from_preset(name)
    parts = three_parts(ledger(cfg))
    total = sum(parts.values())
    shares[name] = {k: v / total for k, v in parts.items()}
    print(f"{name:<12} d={cfg.emb_dim:<5} L={cfg.n_layers:<3} {total:>15,} parameters, "
          f"embeddings {shares[name]['embeddings']:.1%}")

fig, ax = plt.subplots(figsize=(8, 4))
left = [0.0] * len(sizes)
for part in ["embeddings", "blocks + final norm"]:
    values = [shares[name][part] * 100 for name in sizes]
    ax.barh(sizes, values, left=left, color=COLORS[part], label=part)
    for i, (x0, v) in enumerate(zip(left, values)):
        ax.text(x0 + v / 2, i, f"{v:.1f}%", ha="center", va="center", color="white", fontsize=9)
    left = [a + b for a, b in zip(left, values)]
ax.invert_yaxis()
ax.set_xlim(0, 100)
ax.set_xlabel("share of all parameters (%)")
ax.set_title("Tied GPT-2 models: the vocabulary's share shrinks with size")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What it costs in memory
#
# Four bytes per float32 parameter, two per bfloat16. Training with AdamW in float32
# keeps, per parameter, the weight, its gradient and AdamW's two moments: four copies.
# (Activations come on top and depend on batch size and sequence length.)

# %%
MB = 1024**2
rows = {"weights, float32": 4, "weights, bfloat16": 2, "AdamW training, float32": 16}
fig, ax = plt.subplots(figsize=(8, 3.5))
for k, (label, counts, color) in enumerate([("untied head (163M)", untied, "tab:blue"),
                                            ("tied head (124M)", tied, "tab:orange")]):
    n = sum(counts.values())
    values = [n * bytes_per / MB for bytes_per in rows.values()]
    for row, v in zip(rows, values):
        print(f"{label:<20}{row:<26}{v:>10.2f} MB")
    positions = [i + (k - 0.5) * 0.38 for i in range(len(rows))]
    ax.barh(positions, values, 0.38, label=label, color=color)
    for y, v in zip(positions, values):
        ax.text(v + 20, y, f"{v:,.2f} MB", va="center", fontsize=8)
ax.set_yticks(range(len(rows)), list(rows))
ax.invert_yaxis()
ax.set_xlim(0, 3000)
ax.set_xlabel("MB (1024² bytes)")
ax.set_title("GPT-2 small: memory for weights and for AdamW training")
ax.legend(loc="upper right")
plt.tight_layout()
plt.show()
