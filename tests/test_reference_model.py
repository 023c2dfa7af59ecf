"""GPTModel computes what the book's GPT computes, bit for bit, given the same weights.

The book's model (chapter 4 of *Build a Large Language Model (From Scratch)*, with the
multi-head attention of its chapter 3) is restated here, in the test, as plain modules
with the book's attribute and buffer names and the book's order of operations:

- embeddings: the token row plus the position row, then dropout;
- per block, twice: shortcut = x, the book's LayerNorm (mean, biased variance,
  (x - mean) / sqrt(var + eps), scale and shift), the branch, dropout, x + shortcut;
- attention: three projections, heads split by view and transpose(1, 2), scores
  queries @ keys.T, the registered causal `mask` buffer filled with -inf,
  softmax(scores / head_dim**0.5), dropout on the weights, weighted values, heads merged
  by transpose, contiguous and view, out_proj;
- feed-forward: Linear(d, 4d), GELU by its tanh formula with sqrt(2/pi) taken as a
  tensor square root and x**3 as torch.pow(x, 3), Linear(4d, d);
- a final LayerNorm and a bias-free head.

With the same weights, GPTModel's eval logits must equal the restatement's exactly
(`torch.equal`, no tolerance), so a fused kernel or a reordered formula in the package
fails here. State dicts in the book's layout (with a `trf_blocks.N.att.mask` buffer per
block) load into GPTModel with strict=True, and GPTModel's into the book's model.

Every parameter is randomised before comparing (biases, LayerNorm scale and shift
included), so a swapped or ignored tensor cannot hide behind the default initialisation
(zero shifts, unit scales).
"""

import math

import pytest
import torch
from torch import nn

import llm_from_scratch.model as model_module
from llm_from_scratch.model import GPTConfig, GPTModel

# Small enough to be fast, large enough that every dimension differs from the others
# (vocab 97, context 12, width 48, 4 heads of 12, 3 blocks), so a transposed or misplaced
# tensor fails loudly instead of broadcasting by accident.
SMALL = dict(vocab_size=97, context_length=12, emb_dim=48, n_heads=4, n_layers=3,
             drop_rate=0.1)
GPT_CONFIG_124M = {
    "vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
    "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False,
}


# --- the book's model, restated ---------------------------------------------------------

class BookLayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * ((x - mean) / torch.sqrt(var + self.eps)) + self.shift


class BookGELU(nn.Module):
    def forward(self, x):
        c = torch.sqrt(torch.tensor(2.0 / torch.pi))
        return 0.5 * x * (1 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3))))


class BookFeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["emb_dim"]
        self.layers = nn.Sequential(nn.Linear(d, 4 * d), BookGELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        return self.layers(x)


class BookMultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, n, _ = x.shape

        def heads(t):  # (b, n, d_out) -> (b, heads, n, head_dim)
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        keys, queries, values = heads(self.W_key(x)), heads(self.W_query(x)), heads(self.W_value(x))
        scores = queries @ keys.transpose(2, 3)
        scores.masked_fill_(self.mask.bool()[:n, :n], -torch.inf)
        weights = self.dropout(torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1))
        context = (weights @ values).transpose(1, 2).contiguous().view(b, n, self.d_out)
        return self.out_proj(context)


class BookTransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.att = BookMultiHeadAttention(
            d_in=cfg["emb_dim"], d_out=cfg["emb_dim"], context_length=cfg["context_length"],
            num_heads=cfg["n_heads"], dropout=cfg["drop_rate"], qkv_bias=cfg["qkv_bias"])
        self.ff = BookFeedForward(cfg)
        self.norm1 = BookLayerNorm(cfg["emb_dim"])
        self.norm2 = BookLayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        shortcut = x
        x = self.drop_shortcut(self.att(self.norm1(x)))
        x = x + shortcut
        shortcut = x
        x = self.drop_shortcut(self.ff(self.norm2(x)))
        return x + shortcut


class BookGPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(
            *[BookTransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = BookLayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx):
        n = in_idx.shape[1]
        x = self.tok_emb(in_idx) + self.pos_emb(torch.arange(n, device=in_idx.device))
        x = self.trf_blocks(self.drop_emb(x))
        return self.out_head(self.final_norm(x))


def book_config(**overrides):
    """The book's dict config (GPT_CONFIG_124M's keys), small by default."""
    return {**SMALL, "qkv_bias": False, **overrides}


def book_parameter_names(n_layers, qkv_bias):
    """The parameter names of the book's GPTModel, in its registration order."""
    names = ["tok_emb.weight", "pos_emb.weight"]
    for i in range(n_layers):
        b = f"trf_blocks.{i}"
        for proj in ("W_query", "W_key", "W_value"):
            names += [f"{b}.att.{proj}.weight"] + ([f"{b}.att.{proj}.bias"] if qkv_bias else [])
        names += [f"{b}.att.out_proj.weight", f"{b}.att.out_proj.bias"]
        names += [f"{b}.ff.layers.0.weight", f"{b}.ff.layers.0.bias"]
        names += [f"{b}.ff.layers.2.weight", f"{b}.ff.layers.2.bias"]
        names += [f"{b}.norm1.scale", f"{b}.norm1.shift", f"{b}.norm2.scale", f"{b}.norm2.shift"]
    return names + ["final_norm.scale", "final_norm.shift", "out_head.weight"]


# --- helpers ----------------------------------------------------------------------------

def randomise_(model, seed=0):
    """Overwrite every parameter with fresh noise, scaled so activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    before = {k: p.flatten()[:256].clone() for k, p in model.named_parameters()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(generator=g)  # in place: cheap even for 163M numbers
            if name.endswith(".scale"):
                p.mul_(0.3).add_(1.0)
            elif p.dim() == 2 and not name.endswith("_emb.weight"):
                p.div_(math.sqrt(p.shape[1]))  # a weight matrix: std 1/sqrt(fan_in)
            else:
                p.mul_(0.5)  # embeddings, biases, shifts
    for name, p in model.named_parameters():  # nothing kept its initial value
        assert not torch.equal(p.flatten()[:256], before[name]), f"{name} was not randomised"
    return model


def make_ids(cfg, batch, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (batch, n), generator=g)


def ours_and_books(cfg, seed=0):
    """GPTModel with random weights and the book's model holding the same (strict load)."""
    torch.manual_seed(123)
    ours = randomise_(GPTModel(cfg), seed).eval()
    book = BookGPTModel(cfg).eval()
    book.load_state_dict(ours.state_dict(), strict=True)
    return ours, book


def assert_same_logits(ours, book, ids):
    with torch.no_grad():
        a, b = ours(ids), book(ids)
    assert a.dtype == b.dtype == torch.float32
    assert a.shape == b.shape == (*ids.shape, ours.cfg.vocab_size)
    assert b.abs().max() > 1.0  # the comparison is between non-trivial numbers
    diff = (a - b).abs().max().item()
    assert torch.equal(a, b), f"not bit for bit: max abs difference {diff:.3g}"


# --- the tests --------------------------------------------------------------------------

@pytest.mark.parametrize("qkv_bias", [False, True], ids=["no-qkv-bias", "qkv-bias"])
@pytest.mark.parametrize("n", [1, 5, SMALL["context_length"]], ids=lambda n: f"{n}-tokens")
def test_eval_logits_equal_the_books_computation(qkv_bias, n):
    cfg = book_config(qkv_bias=qkv_bias)
    ours, book = ours_and_books(cfg)
    assert_same_logits(ours, book, make_ids(cfg, batch=3, n=n))


def test_the_same_seed_draws_the_books_weights():
    """Layers built in the book's order draw the same numbers from the same seed."""
    cfg = book_config(qkv_bias=True)
    torch.manual_seed(123)
    ours = GPTModel(cfg).state_dict()
    torch.manual_seed(123)
    book = BookGPTModel(cfg).state_dict()
    assert list(ours) == list(book)
    for key in book:
        assert torch.equal(ours[key], book[key]), key


def test_training_mode_draws_the_books_dropout_masks():
    """Dropout on: with the same seed before each forward pass, the same masks fall in
    the same places (the book prints its logits in training mode)."""
    cfg = book_config(drop_rate=0.3)
    ours, book = ours_and_books(cfg)
    ours.train(), book.train()
    ids = make_ids(cfg, batch=2, n=9)
    with torch.no_grad():
        torch.manual_seed(7)
        a = ours(ids)
        torch.manual_seed(7)
        b = book(ids)
        torch.manual_seed(8)
        other = book(ids)
    assert torch.equal(a, b)
    assert not torch.equal(a, other)  # dropout did draw


def test_book_dict_config_and_tied_head():
    """The book's dict config builds the same model; a tied head is out_head.weight."""
    cfg = book_config(qkv_bias=True, tie_weights=True)
    torch.manual_seed(123)
    ours = randomise_(GPTModel(cfg), seed=5).eval()
    sd = ours.state_dict()
    assert sd["out_head.weight"].data_ptr() == sd["tok_emb.weight"].data_ptr()
    book = BookGPTModel({k: v for k, v in cfg.items() if k != "tie_weights"}).eval()
    book.load_state_dict(sd, strict=True)
    assert_same_logits(ours, book, make_ids(cfg, batch=2, n=7))


def test_gpt2_small_at_full_size():
    """The book's GPT_CONFIG_124M, bit for bit, on a short input. Every weight is
    overwritten anyway, so both models are built on the meta device (no draws)."""
    cfg = GPT_CONFIG_124M
    with torch.device("meta"):
        ours, book = GPTModel(cfg), BookGPTModel(cfg)
    ours = randomise_(ours.to_empty(device="cpu"), seed=7).eval()
    with torch.no_grad():  # to_empty left the mask buffers uninitialised
        for block in ours.trf_blocks:
            block.att.mask.copy_(torch.triu(torch.ones_like(block.att.mask), diagonal=1))
    book.load_state_dict(ours.state_dict(), strict=True, assign=True)  # shares tensors
    assert_same_logits(ours, book.eval(), make_ids(cfg, batch=2, n=6))


def test_a_book_state_dict_loads_strictly_into_gptmodel():
    """The book's layout, masks included: strict=True loads it, and the logits follow."""
    cfg = book_config()
    torch.manual_seed(0)
    book = randomise_(BookGPTModel(cfg), seed=3).eval()
    book_sd = book.state_dict()
    masks = [f"trf_blocks.{i}.att.mask" for i in range(cfg["n_layers"])]
    assert set(masks) <= set(book_sd)
    torch.manual_seed(1)
    ours = GPTModel(cfg).eval()
    result = ours.load_state_dict(book_sd, strict=True)
    assert result.missing_keys == result.unexpected_keys == []
    assert_same_logits(ours, book, make_ids(cfg, batch=2, n=cfg["context_length"]))


def test_gptmodel_state_dict_has_the_books_keys_in_the_books_order():
    for qkv_bias in (False, True):
        cfg = book_config(qkv_bias=qkv_bias)
        with torch.device("meta"):
            ours, book = GPTModel(cfg), BookGPTModel(cfg)
        assert [name for name, _ in ours.named_parameters()] == book_parameter_names(3, qkv_bias)
        assert list(ours.state_dict()) == list(book.state_dict())
        buffers = [name for name, _ in ours.named_buffers()]
        assert buffers == [f"trf_blocks.{i}.att.mask" for i in range(3)]


def test_the_comparison_catches_a_wrong_mapping():
    """The check has teeth: swapping two same-shaped tensors changes the book's logits."""
    cfg = book_config(qkv_bias=True)
    ours, book = ours_and_books(cfg)
    ids = make_ids(cfg, batch=2, n=8)
    with torch.no_grad():
        right = ours(ids)
        for a, b in [
            ("trf_blocks.1.att.W_query.weight", "trf_blocks.1.att.W_key.weight"),
            ("trf_blocks.0.att.W_value.bias", "trf_blocks.0.att.W_query.bias"),
            ("trf_blocks.2.norm1.scale", "trf_blocks.2.norm2.scale"),
            ("trf_blocks.0.norm1.shift", "trf_blocks.1.norm1.shift"),
            ("trf_blocks.0.ff.layers.0.bias", "trf_blocks.2.ff.layers.0.bias"),
            ("final_norm.shift", "trf_blocks.2.att.out_proj.bias"),
        ]:
            sd = dict(ours.state_dict())
            sd[a], sd[b] = sd[b], sd[a]
            book.load_state_dict(sd, strict=True)
            wrong = book(ids)
            assert not torch.allclose(right, wrong, atol=1e-4), f"{a} <-> {b} went unnoticed"


def test_the_comparison_catches_a_fused_kernel(monkeypatch):
    """Bit for bit is stricter than a tolerance: PyTorch's fused layer norm computes the
    same function in another order, and torch.equal sees the difference."""

    def fused(self, x):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.scale, self.shift, self.eps)

    cfg = book_config()
    ours, book = ours_and_books(cfg)
    ids = make_ids(cfg, batch=3, n=cfg["context_length"])
    monkeypatch.setattr(model_module.LayerNorm, "forward", fused)
    with torch.no_grad():
        a, b = ours(ids), book(ids)
    assert torch.allclose(a, b, atol=1e-4)  # the same function ...
    assert not torch.equal(a, b)  # ... but not the book's computation


def test_logits_are_causal():
    """Changing a later token never changes the logits of earlier positions."""
    cfg = book_config()
    ours, _ = ours_and_books(cfg)
    ids = make_ids(cfg, batch=1, n=10)
    changed = ids.clone()
    changed[0, 6] = (changed[0, 6] + 1) % cfg["vocab_size"]
    with torch.no_grad():
        a, b = ours(ids), ours(changed)
    assert torch.equal(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_parameter_shapes_are_the_books():
    cfg = GPTConfig(**SMALL, qkv_bias=True)
    V, T, d = cfg.vocab_size, cfg.context_length, cfg.emb_dim
    with torch.device("meta"):
        sd = GPTModel(cfg).state_dict()
    expected = {
        "tok_emb.weight": (V, d),
        "pos_emb.weight": (T, d),
        "trf_blocks.0.att.W_query.weight": (d, d),  # nn.Linear stores (out, in)
        "trf_blocks.0.att.W_query.bias": (d,),
        "trf_blocks.0.att.out_proj.weight": (d, d),
        "trf_blocks.0.att.mask": (T, T),
        "trf_blocks.0.ff.layers.0.weight": (4 * d, d),
        "trf_blocks.0.ff.layers.0.bias": (4 * d,),
        "trf_blocks.0.ff.layers.2.weight": (d, 4 * d),
        "trf_blocks.0.norm1.scale": (d,),
        "final_norm.shift": (d,),
        "out_head.weight": (V, d),
    }
    for name, shape in expected.items():
        assert tuple(sd[name].shape) == shape, name
