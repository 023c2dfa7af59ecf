# %% [markdown]
# # Lab: the transformer block
#
# A hands-on companion to
# [chapter 7, Transformer block](../../chapters/07-transformer-block/).
# We tokenize a short sentence, open up the first block of a freshly built GPT-2 small,
# draw the causal attention weights of each of its 12 heads, see what forgetting the
# $1/\sqrt{d_k}$ would do to them, and follow the residual stream through all twelve
# blocks, wired pre-norm (as GPT-2 is) and post-norm (as the original Transformer was).
#
# Run it with `python docs/labs/transformer_block.py`; it takes a few seconds, most of
# them spent building the 124M-parameter model.

# %%
import matplotlib.pyplot as plt
import torch

from llm_from_scratch.model import GPTConfig, GPTModel
from llm_from_scratch.tokenizer import get_tokenizer

torch.manual_seed(123)
cfg = GPTConfig(drop_rate=0.0)  # GPT-2 small; no dropout, so every run is deterministic
model = GPTModel(cfg).eval()
tokenizer = get_tokenizer()

text = "Every effort moves you forward, one step at a time."
ids = torch.tensor([tokenizer.encode(text)])  # (1, tokens)
labels = [tokenizer.decode([i]) for i in ids[0].tolist()]
print(f"{ids.shape[1]} tokens:", labels)

with torch.no_grad():
    positions = torch.arange(ids.shape[1])
    x = model.tok_emb(ids) + model.pos_emb(positions)  # what the first block receives
print("input to block 0:", tuple(x.shape))

# %% [markdown]
# ## Attention weights, head by head
#
# `MultiHeadAttention` computes its attention weights inside `forward` and returns only
# the context vectors. So we recompute the weights with the formula,
# $\mathrm{softmax}(QK^\top/\sqrt{d_k} + M)$, from the block's own `W_query` and
# `W_key` (with a switch to leave out the $\sqrt{d_k}$, used further down). Before we
# trust the pictures, we check them two ways: against the weights the module itself
# hands to its dropout layer (a forward hook on `att.dropout` sees them), and by
# rebuilding the module's output from them.

# %%
block = model.trf_blocks[0]
att = block.att


def attention_weights(att, x, scale=True):
    """The (batch, heads, tokens, tokens) causal attention weights of `att` on input x."""
    b, t, _ = x.shape

    def split_heads(y):
        return y.view(b, t, att.num_heads, att.head_dim).transpose(1, 2)

    q, k = split_heads(att.W_query(x)), split_heads(att.W_key(x))
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / att.head_dim**0.5
    future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


seen = []  # what the module passes to its dropout layer: its attention weights
hook = att.dropout.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
with torch.no_grad():
    h = block.norm1(x)  # attention reads the normalised input
    weights = attention_weights(att, h)
    att(h)
hook.remove()
print("the module's own weights:", torch.allclose(seen[0], weights, atol=1e-6))

with torch.no_grad():
    b, t, _ = h.shape
    values = att.W_value(h).view(b, t, att.num_heads, att.head_dim).transpose(1, 2)
    rebuilt = att.out_proj((weights @ values).transpose(1, 2).reshape(b, t, -1))
    print("weights:", tuple(weights.shape), "(batch, heads, tokens, tokens)")
    print("reproduces att(h):", torch.allclose(rebuilt, att(h), atol=1e-6))
    print("largest weight above the diagonal:", weights.triu(diagonal=1).max().item())
    print("row sums between", f"{weights.sum(-1).min():.4f}", "and", f"{weights.sum(-1).max():.4f}")

# %%
fig, axes = plt.subplots(3, 4, figsize=(13, 10), sharex=True, sharey=True, layout="constrained")
for head, ax in enumerate(axes.flat):
    image = ax.imshow(weights[0, head].numpy(), cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"head {head}")
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
fig.suptitle("Block 0, untrained: causal attention weights (row = query, column = key)")
fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
plt.show()

# %% [markdown]
# Every head shows the same triangle: nothing above the diagonal, because no token may
# look ahead. Inside the triangle the weights vary only mildly around the uniform
# $1/(i+1)$ of row $i$ (counting rows from 0): this model is untrained, its queries and
# keys are small random projections, so no key stands out much. Training is what carves
# distinct patterns into the heads (one attending to the previous token, one to the
# first, one to matching words...). The last row, in numbers: each head has its own
# random favourite, but none gives any token more than two and a half times its uniform
# share.

# %%
last_row = weights[0, :, -1, :]  # (heads, tokens): how the last token "." spreads its attention
print(f"uniform weight for the last of {t} tokens: {1 / t:.3f}")
for head in range(att.num_heads):
    row = last_row[head]
    print(f"head {head:2d}: last token's weights from {row.min():.3f} to {row.max():.3f}, "
          f"most on {labels[row.argmax()]!r}")

# %% [markdown]
# ## What the scaling of the scores is for
#
# Trained heads have larger queries and keys than these. We can imitate that by doubling
# the attention's input: queries and keys double (their projections have no bias here),
# so every score is multiplied by 4. Then we compute the weights twice, with the
# chapter's $1/\sqrt{d_k}$ and without it (as if we had forgotten it), and compare the
# average largest weight in a row, and the pictures of four heads.

# %%
with torch.no_grad():
    sharper = {
        "with 1/sqrt(d_k)": attention_weights(att, 2 * h),
        "without": attention_weights(att, 2 * h, scale=False),
    }
for name, w in sharper.items():
    # skip the first row, whose single weight is always 1
    print(f"{name:<17} average largest weight per row: {w[0, :, 1:].amax(-1).mean():.3f}")

fig, axes = plt.subplots(2, 4, figsize=(13, 6.5), sharex=True, sharey=True)
for row, (name, w) in enumerate(sharper.items()):
    for col in range(4):
        ax = axes[row, col]
        ax.imshow(w[0, col].numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {col}, {name}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=90)
        ax.set_yticks(range(len(labels)), labels)
fig.suptitle("Large queries and keys: softmax saturates without the scaling")
fig.tight_layout()
plt.show()

# %% [markdown]
# With the scaling, the sharper heads still spread their attention over several tokens.
# Without it, most rows put nearly all their weight on a single key: the softmax is
# saturated, and a saturated softmax passes back almost no gradient. That is why the
# formula divides by $\sqrt{d_k}$.
#
# ## Causality, measured
#
# Change the *last* token of the sentence and run the block again. Only the last
# position's output may change: no earlier token was allowed to look at it.

# %%
changed_ids = ids.clone()
changed_ids[0, -1] = tokenizer.encode("!")[0]
with torch.no_grad():
    x_changed = model.tok_emb(changed_ids) + model.pos_emb(positions)
    difference = (block(x_changed) - block(x)).abs().amax(dim=-1)[0]  # per position
print("largest change per position:", [f"{d:.1e}" for d in difference.tolist()])
print("positions that changed:", [i for i, d in enumerate(difference) if d > 1e-6])

# %% [markdown]
# ## Through the stack: pre-norm and post-norm
#
# Now all twelve blocks. We follow the residual stream (the tensor the blocks pass to
# each other) and print, after every block, its standard deviation and how large that
# block's update was compared with the stream it received. Then we wire the *same* blocks
# post-norm, $x \leftarrow \mathrm{LN}(x + F(x))$, and do it again.


# %%
def pre_norm(block, x):
    """GPT-2's wiring: exactly what TransformerBlock.forward does."""
    x = x + block.att(block.norm1(x))
    return x + block.ff(block.norm2(x))


def post_norm(block, x):
    """The original Transformer's wiring, with the same modules."""
    x = block.norm1(x + block.att(x))
    return block.norm2(x + block.ff(x))


with torch.no_grad():
    assert torch.allclose(pre_norm(block, x), block(x))  # the wiring above is the library's
    stats = {}
    for name, wiring in [("pre-norm", pre_norm), ("post-norm", post_norm)]:
        stream, rows = x, []
        for blk in model.trf_blocks:
            new = wiring(blk, stream)
            rows.append((new.std().item(), ((new - stream).norm() / stream.norm()).item()))
            stream = new
        stats[name] = rows

print(f"input stream std: {x.std():.4f}")
print("block   pre-norm std  update/stream   post-norm std  update/stream")
for i, ((s1, u1), (s2, u2)) in enumerate(zip(stats["pre-norm"], stats["post-norm"])):
    print(f"{i:5d}   {s1:12.4f}  {u1:13.3f}   {s2:13.4f}  {u2:13.3f}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
depth = range(1, cfg.n_layers + 1)
for name, rows in stats.items():
    ax1.plot(depth, [s for s, _ in rows], "o-", label=name)
    ax2.plot(depth, [u for _, u in rows], "o-", label=name)
ax1.set_xlabel("after block")
ax1.set_ylabel("std of the residual stream")
ax1.set_yscale("log")
ax1.legend()
ax2.set_xlabel("after block")
ax2.set_ylabel("|update| / |stream before the block|")
ax2.set_yscale("log")
ax2.legend()
fig.suptitle("GPT-2 small at initialisation: the residual stream through 12 blocks")
fig.tight_layout()
plt.show()

# %% [markdown]
# Pre-norm: the stream starts at the scale of the embeddings (PyTorch draws each table
# from $\mathcal{N}(0, 1)$, so about $\sqrt{2} \approx 1.4$ for their sum) and grows as
# every block *adds* to it, to about 1.7 after twelve blocks; each update is measured
# against a stream that keeps getting larger, so later blocks change it relatively less.
# Nothing inside the stack normalises it, which is why `GPTModel` ends with `final_norm`.
# Post-norm: the first layer norm brings the stream to unit scale at once, and every
# block's output is renormalised there.
#
# ## Try it
#
# - Set `drop_rate=0.1` and call `model.train()`: run the block twice on the same input.
#   Do the outputs agree? Which three places in a block draw random numbers?
# - In `attention_weights`, drop the `masked_fill`. Which weights become non-zero, and
#   why does the "reproduces att(h)" check now print False?
# - Scale the attention's input by 1, 2, 4 and 8 (instead of 2 only) and plot the average
#   largest weight against the factor, with and without the $1/\sqrt{d_k}$.
