# %% [markdown]
# # Lab: tokenization basics
#
# A hands-on companion to
# [chapter 2, Tokenization](../../chapters/02-tokenization/). We look at how
# GPT-2's byte-pair encoding splits a few sentences, build the book's `(2, 4)`
# batch, measure how long GPT-2's tokens are, and compare how many tokens different
# kinds of text need per word.
#
# Run it with `python docs/labs/tokenization_basics.py`; it works offline and takes
# a few seconds (most of it building the tokenizer once).

# %%
import matplotlib.pyplot as plt
import torch

from llm_from_scratch.tokenizer import (
    END_OF_TEXT_ID,
    get_tokenizer,
    text_to_token_ids,
    token_ids_to_text,
)

tokenizer = get_tokenizer()  # GPT-2's BPE, from hash-verified local files
print("vocabulary size:", tokenizer.n_vocab,
      "| end-of-text id:", END_OF_TEXT_ID)

# %% [markdown]
# ## How sentences split
#
# Each token is shown between `|` bars. Notice that a word's leading space is part
# of its token, that common words are one token, and that rare words, numbers and
# non-English text fall apart into smaller pieces.

# %%
sentences = [
    "Every effort moves you",
    "Tokenization isn't magic, it's statistics.",
    "The year 2024 had 366 days.",
    "Akwirw ier",
    "Grüße aus Zürich!",
    "def forward(self, x): return x",
]
for text in sentences:
    ids = tokenizer.encode(text)
    pieces = [tokenizer.decode_single_token_bytes(i).decode("utf-8",
                                                            errors="replace")
              for i in ids]
    print(f"{len(ids):>2} tokens |" + "|".join(pieces) + "|")

# %% [markdown]
# ## From text to a batch and back
#
# The book's two example sentences are 4 tokens each, so they stack into a
# `(batch, tokens) = (2, 4)` tensor, the input shape of the GPT model.

# %%
batch = torch.cat([text_to_token_ids("Every effort moves you"),
                   text_to_token_ids("Every day holds a")], dim=0)
print(batch)
print("shape:", tuple(batch.shape))
for row in batch:
    print(repr(token_ids_to_text(row)))

# %% [markdown]
# ## How long are GPT-2's tokens?
#
# The vocabulary holds 256 single bytes, 50,000 merged pieces and one special
# token. Measuring every ordinary token in bytes shows what the merges built: mostly
# pieces of 3 to 10 bytes, i.e. word fragments and whole common words, two thirds of
# them starting with a space. The extremes tell you what the training data looked
# like.

# %%
lengths = []
with_space = 0
for token_id in range(tokenizer.n_vocab):
    if token_id == END_OF_TEXT_ID:
        continue  # a special token, not a sequence of bytes
    piece = tokenizer.decode_single_token_bytes(token_id)
    lengths.append(len(piece))
    with_space += piece.startswith(b" ")

print(f"ordinary tokens: {len(lengths):,}")
print(f"single bytes: {lengths.count(1)}")
print(f"mean length: {sum(lengths) / len(lengths):.2f} bytes, "
      f"longest: {max(lengths)} bytes")
print(f"tokens that start with a space: {with_space:,} "
      f"({with_space / len(lengths):.0%})")

# The very longest token is web debris: "ÃÂ" (wrongly re-encoded text) 32 times.
longest = max(range(END_OF_TEXT_ID),
              key=lambda i: len(tokenizer.decode_single_token_bytes(i)))
text = tokenizer.decode([longest])
print(f"longest token: id {longest}, {text[:6]!r}... = 'ÃÂ' x "
      f"{text.count('ÃÂ')}")

# The longest tokens made only of the letters a-z and A-Z: real words, and some
# strings that were simply very frequent in GPT-2's training pages (site
# boilerplate, a Reddit username).
def ascii_letters(i):
    word = tokenizer.decode([i]).strip()
    return word.isascii() and word.isalpha()


letters_only = [i for i in range(END_OF_TEXT_ID) if ascii_letters(i)]
letters_only.sort(key=lambda i: (-len(tokenizer.decode([i])), i))
for token_id in letters_only[:5]:
    print(f"  {token_id:>5} {tokenizer.decode([token_id])!r}")

fig, ax = plt.subplots(figsize=(7, 4))
ax.hist(lengths, bins=range(1, 21), color="tab:blue", edgecolor="white",
        align="left")
ax.set_xlabel("token length (bytes)")
ax.set_ylabel("number of tokens")
ax.set_title("Length of GPT-2's 50,256 ordinary tokens (up to 19 bytes shown)")
ax.set_xticks(range(1, 20))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Tokens per word, by kind of text
#
# GPT-2 learned its merges from English web pages, so English prose is cheap: about
# one token per word. Text the merges saw less of (other languages, long numbers,
# code, emoji) costs more tokens per word, which means a shorter effective context
# and more work for the model.

# %%
samples = {
    "English prose": ("The quick brown fox jumps over the lazy dog while the "
                      "farmer watches from the porch."),
    "English jargon": ("Byte-pair encoding tokenizes heteroscedastic "
                       "autoregressive transformer embeddings."),
    "German": ("Der schnelle braune Fuchs springt über den faulen Hund, "
               "während der Bauer zusieht."),
    "Python code": ("for index, value in enumerate(values): "
                    "total += value * weights[index]"),
    "Numbers": ("3.14159 2.71828 1.41421 1.73205 0.57721 1.61803 2.50290 "
                "4.66920"),
    "Emoji": "🦙 🚀 🎉 🧠 🤖 📚 🌍 ✨",
}
ratios = {}
for kind, text in samples.items():
    n_words = len(text.split())
    n_tokens = len(tokenizer.encode(text))
    ratios[kind] = n_tokens / n_words
    print(f"{kind:<15}{n_words:>4} words {n_tokens:>4} tokens  "
          f"{ratios[kind]:.2f} tokens/word")

fig, ax = plt.subplots(figsize=(7, 4))
ax.barh(list(ratios), list(ratios.values()), color="tab:orange")
ax.axvline(1.0, color="gray", linestyle="--", linewidth=1)
ax.invert_yaxis()
ax.set_xlabel("tokens per whitespace-separated word")
ax.set_title("How many GPT-2 tokens a word costs")
fig.tight_layout()
plt.show()
