# %% [markdown]
# # Lab: the next-token distribution
#
# A hands-on companion to [chapter 9, Text generation](../../chapters/09-text-generation/).
# Generation comes down to one decision, repeated: turn the logits at the last position
# into a distribution, then pick a token from it. Here we draw that distribution. We see
# how temperature reshapes it, what top-k and top-p cut away, and how flat it is for an
# untrained model.
#
# Run it with `python docs/labs/text_generation.py`; it takes a few seconds.

# %%
import matplotlib.pyplot as plt
import torch

from llm_from_scratch.generate import next_token_probabilities

# The book's toy example: scores for the word after "every effort moves you".
vocab = ["closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you"]
logits = torch.tensor([[4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79]])

for word, z in zip(vocab, logits[0].tolist()):
    print(f"{word:>8}  {z:5.2f}")

# %% [markdown]
# ## Temperature
#
# Temperature divides the logits before the softmax,
# $p_i(T) = e^{z_i/T} / \sum_j e^{z_j/T}$. Below 1 it sharpens the distribution towards
# the best token, and above 1 it flattens it towards uniform. The ranking never changes.
# Only the gaps between the bars do.

# %%
temperatures = [0.1, 0.5, 1.0, 2.0, 5.0]
fig, axes = plt.subplots(1, len(temperatures), figsize=(16, 3.2), sharey=True)
for ax, t in zip(axes, temperatures):
    probs = next_token_probabilities(logits, temperature=t)[0]
    ax.bar(range(len(vocab)), probs.tolist(), color="tab:blue")
    ax.set_xticks(range(len(vocab)), vocab, rotation=60, ha="right")
    ax.set_title(f"T = {t}")
    print(f"T = {t:>3}: " + " ".join(f"{p:.3f}" for p in probs.tolist()))
axes[0].set_ylabel("probability")
axes[0].set_ylim(0, 1)
fig.suptitle('Next word after "every effort moves you" at five temperatures')
fig.tight_layout()
plt.show()

# %% [markdown]
# One number sums up how spread out a distribution is: its **entropy**,
# $H = -\sum_i p_i \log p_i$. It runs from 0 (one certain token) up to
# $\log V = \log 9 \approx 2.197$ (all nine equally likely). As the temperature rises,
# the entropy climbs from the greedy end to the uniform end.

# %%
grid = torch.logspace(-2, 2, 200)  # temperatures from 0.01 to 100
entropies = []
for t in grid.tolist():
    p = next_token_probabilities(logits, temperature=t)[0]
    entropies.append(-(p * p.clamp_min(1e-12).log()).sum().item())
for t in (0.1, 1.0, 5.0):
    p = next_token_probabilities(logits, temperature=t)[0]
    print(f"entropy at T = {t}: {-(p * p.clamp_min(1e-12).log()).sum().item():.3f} nats")
print(f"maximum (uniform): {torch.log(torch.tensor(9.0)).item():.3f} nats")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogx(grid.tolist(), entropies)
ax.axhline(torch.log(torch.tensor(9.0)).item(), color="gray", linestyle="--", label="uniform, log 9")
ax.axvline(1.0, color="tab:orange", linestyle=":", label="T = 1 (the model's own distribution)")
ax.set_xlabel("temperature T")
ax.set_ylabel("entropy (nats)")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What sampling actually draws
#
# A seeded `torch.Generator` makes sampling repeatable. With 2,000 draws at $T = 1$, the
# share of each word comes close to its probability.

# %%
probs = next_token_probabilities(logits, temperature=1.0)[0]
generator = torch.Generator().manual_seed(123)
draws = torch.multinomial(probs, num_samples=2000, replacement=True, generator=generator)
shares = torch.bincount(draws, minlength=len(vocab)) / 2000
for word, p, s in zip(vocab, probs.tolist(), shares.tolist()):
    print(f"{word:>8}  probability {p:.3f}  drawn {s:.3f}")

x = torch.arange(len(vocab)).float()
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.bar((x - 0.2).tolist(), probs.tolist(), width=0.4, label="probability")
ax.bar((x + 0.2).tolist(), shares.tolist(), width=0.4, label="share of 2,000 draws")
ax.set_xticks(range(len(vocab)), vocab, rotation=45, ha="right")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Top-k and top-p: what gets cut
#
# **Top-k** keeps the $k$ highest logits and sets the rest to $-\infty$. **Top-p**
# (nucleus) sorts the tokens by probability and keeps a token while the tokens ranked
# above it hold less than $p$ of the mass. Both then renormalise what is left. Below,
# grey bars are the original distribution ($T = 1$) and coloured bars are what remains
# to sample from.

# %%
settings = {"top_k = 3": {"top_k": 3}, "top_k = 1": {"top_k": 1},
            "top_p = 0.9": {"top_p": 0.9}, "top_p = 0.95": {"top_p": 0.95}}
fig, axes = plt.subplots(1, len(settings), figsize=(15, 3.2), sharey=True)
for ax, (name, kwargs) in zip(axes, settings.items()):
    kept = next_token_probabilities(logits, **kwargs)[0]
    ax.bar(range(len(vocab)), probs.tolist(), color="lightgray", label="T = 1")
    ax.bar(range(len(vocab)), kept.tolist(), width=0.5, color="tab:green", label="after truncation")
    ax.set_xticks(range(len(vocab)), vocab, rotation=60, ha="right")
    ax.set_title(name)
    print(f"{name:>12}: keeps {[w for w, p in zip(vocab, kept.tolist()) if p > 0]}")
axes[0].set_ylabel("probability")
axes[0].legend(fontsize="small")
fig.tight_layout()
plt.show()

# %% [markdown]
# The top-p cut is easiest to see on the sorted distribution. Draw the cumulative mass
# in rank order. A token is kept when the mass *before* it is still under $p$, so the
# nucleus ends with the first token that carries the curve across the line.

# %%
sorted_probs, order = torch.sort(probs, descending=True)
cumulative = sorted_probs.cumsum(dim=0)
before = cumulative - sorted_probs
top_p = 0.9
keep = before < top_p
print("rank  word      p      mass before  kept")
for rank, (i, p, b, k) in enumerate(zip(order.tolist(), sorted_probs.tolist(),
                                        before.tolist(), keep.tolist()), start=1):
    print(f"{rank:>4}  {vocab[i]:<8} {p:.4f}  {b:.4f}       {k}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ranks = list(range(1, len(vocab) + 1))
ax.bar(ranks, sorted_probs.tolist(), color=["tab:green" if k else "lightgray" for k in keep.tolist()])
ax.plot(ranks, cumulative.tolist(), "o-", color="black", label="cumulative mass")
ax.axhline(top_p, color="tab:red", linestyle="--", label=f"top_p = {top_p}")
ax.set_xticks(ranks, [vocab[i] for i in order.tolist()], rotation=45, ha="right")
ax.set_ylabel("probability")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The untrained model's distribution
#
# Why does the untrained model write gibberish? Look at what it is choosing from. We use a
# small random GPT with GPT-2's vocabulary. Its best next token after "Hello, I am" is
# barely more likely than the rest: the distribution over 50,257 tokens is close to
# uniform, so "the most likely token" is an accident of the random weights. A trained
# model (chapter 11 loads one) puts most of its mass on a handful of tokens.

# %%
from llm_from_scratch.model import GPTConfig, GPTModel
from llm_from_scratch.tokenizer import get_tokenizer, text_to_token_ids

torch.manual_seed(123)
small = GPTConfig(vocab_size=50257, context_length=64, emb_dim=64, n_heads=4, n_layers=2)
model = GPTModel(small).eval()  # eval(): dropout off, so the probabilities are exact
tokenizer = get_tokenizer()
with torch.no_grad():
    last = model(text_to_token_ids("Hello, I am"))[:, -1, :]
model_probs = next_token_probabilities(last, temperature=1.0)[0]
top = torch.topk(model_probs, 10)
print(f"uniform: {1 / 50257:.6f}")
for p, i in zip(top.values.tolist(), top.indices.tolist()):
    print(f"{tokenizer.decode([i])!r:>16}  {p:.6f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.bar(range(10), top.values.tolist())
ax.axhline(1 / 50257, color="tab:red", linestyle="--", label="uniform, 1/50257")
ax.set_xticks(range(10), [repr(tokenizer.decode([i])) for i in top.indices.tolist()],
              rotation=45, ha="right")
ax.set_ylabel("probability")
ax.set_title('Untrained model: the 10 likeliest tokens after "Hello, I am"')
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
