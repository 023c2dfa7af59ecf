"""GPTModel computes what the book's reference GPT computes, given the same weights.

The book's published model (chapter 4 of *Build a Large Language Model (From Scratch)*) is
specified here by an independent, purely functional re-implementation, `reference_logits`,
written from the book's equations with explicit torch ops only: embeddings by indexing,
layer norm by its formula (biased variance, eps 1e-5, `scale` and `shift`), causal
attention with an upper-triangular -inf mask and an explicit softmax, GELU by its tanh
formula, pre-norm residual blocks, a final norm and the head as a matrix product. It reads
the weights by the book's state_dict names, so these tests also pin those names down.

Every parameter is randomised before comparing (biases, LayerNorm scale and shift
included), so a swapped or ignored tensor cannot hide behind GPT-2's initialisation
(zero biases, unit scales).
"""

import math
import re

import pytest
import torch

from llm_from_scratch.model import GPTConfig, GPTModel

ATOL = RTOL = 1e-5  # float32 precision: a mapping error shows up orders of magnitude above this

# Small enough to be fast, large enough that every dimension differs from the others
# (vocab 97, context 12, width 48, 4 heads of 12, 3 blocks), so a transposed or misplaced
# tensor fails loudly instead of broadcasting by accident.
SMALL = dict(vocab_size=97, context_length=12, emb_dim=48, n_heads=4, n_layers=3, drop_rate=0.1)


# --- the reference: the book's GPT as one pure function ----------------------------------

def _layer_norm(x, scale, shift, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased: divide by d, not d - 1
    return scale * (x - mean) / torch.sqrt(var + eps) + shift


def _gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def _linear(x, sd, prefix, bias=True):
    y = x @ sd[prefix + ".weight"].T
    return y + sd[prefix + ".bias"] if bias else y


def _causal_attention(x, sd, prefix, n_heads, qkv_bias):
    batch, n, d = x.shape
    head_dim = d // n_heads

    def heads(t):  # (batch, n, d) -> (batch, heads, n, head_dim)
        return t.reshape(batch, n, n_heads, head_dim).permute(0, 2, 1, 3)

    q = heads(_linear(x, sd, prefix + ".W_query", qkv_bias))
    k = heads(_linear(x, sd, prefix + ".W_key", qkv_bias))
    v = heads(_linear(x, sd, prefix + ".W_value", qkv_bias))
    scores = q @ k.transpose(-1, -2)  # (batch, heads, n, n)
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    weights = torch.softmax(scores / math.sqrt(head_dim), dim=-1)
    context = (weights @ v).permute(0, 2, 1, 3).reshape(batch, n, d)
    return _linear(context, sd, prefix + ".out_proj")


def reference_logits(state_dict, idx, cfg):
    """The book's GPT forward pass in eval mode (dropout is the identity), as a function."""
    cfg = cfg if isinstance(cfg, dict) else cfg.to_dict()
    sd = state_dict
    n = idx.shape[1]
    x = sd["tok_emb.weight"][idx] + sd["pos_emb.weight"][torch.arange(n)]
    for i in range(cfg["n_layers"]):
        b = f"trf_blocks.{i}"
        h = _layer_norm(x, sd[f"{b}.norm1.scale"], sd[f"{b}.norm1.shift"])
        x = x + _causal_attention(h, sd, f"{b}.att", cfg["n_heads"], cfg["qkv_bias"])
        h = _layer_norm(x, sd[f"{b}.norm2.scale"], sd[f"{b}.norm2.shift"])
        h = _linear(_gelu(_linear(h, sd, f"{b}.ff.layers.0")), sd, f"{b}.ff.layers.2")
        x = x + h
    x = _layer_norm(x, sd["final_norm.scale"], sd["final_norm.shift"])
    return x @ sd["out_head.weight"].T


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
    # A fingerprint of each state_dict entry (its first 256 numbers) to check afterwards.
    before = {k: v.flatten()[:256].clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(generator=g)  # in place: cheap even for 163M numbers
            if name.endswith(".scale"):
                p.mul_(0.3).add_(1.0)
            elif p.dim() == 2 and not name.endswith("_emb.weight"):
                p.div_(math.sqrt(p.shape[1]))  # a weight matrix: std 1/sqrt(fan_in)
            else:
                p.mul_(0.5)  # embeddings, biases, shifts
    # Nothing kept its initial value, so nothing can be silently ignored by a wrong mapping.
    for key, value in model.state_dict().items():
        assert not torch.equal(value.flatten()[:256], before[key]), f"{key} was not randomised"
    return model


def make_ids(cfg, batch, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg["vocab_size"], (batch, n), generator=g)


def build(cfg, seed=0):
    torch.manual_seed(123)
    return randomise_(GPTModel(cfg), seed).eval()


def assert_same_logits(model, cfg, ids):
    with torch.no_grad():
        ours = model(ids)
        ref = reference_logits(model.state_dict(), ids, cfg)
    assert ours.dtype == ref.dtype == torch.float32
    assert ours.shape == ref.shape == (*ids.shape, cfg["vocab_size"])
    assert ref.abs().max() > 1.0  # the comparison is between non-trivial numbers
    err = (ours - ref).abs().max().item()
    assert torch.allclose(ours, ref, atol=ATOL, rtol=RTOL), f"max abs difference {err:.3g}"
    return ref


# --- the tests --------------------------------------------------------------------------

@pytest.mark.parametrize("qkv_bias", [False, True], ids=["no-qkv-bias", "qkv-bias"])
@pytest.mark.parametrize("n", [1, 5, SMALL["context_length"]], ids=lambda n: f"{n}-tokens")
def test_small_model_matches_reference(qkv_bias, n):
    cfg = GPTConfig(**SMALL, qkv_bias=qkv_bias)
    model = build(cfg)
    assert_same_logits(model, cfg, make_ids(cfg, batch=3, n=n))


def test_book_dict_config_and_tied_head_match_reference():
    """The book's dict config builds the same model; a tied head is read as out_head.weight."""
    cfg = dict(SMALL, qkv_bias=True, tie_weights=True)
    model = build(cfg, seed=5)
    sd = model.state_dict()
    assert sd["out_head.weight"].data_ptr() == sd["tok_emb.weight"].data_ptr()
    assert_same_logits(model, cfg, make_ids(cfg, batch=2, n=7))


def test_gpt2_small_124m_matches_reference():
    """The default (book) configuration at full size, on a short input."""
    cfg = GPTConfig()
    # Every weight is overwritten anyway, so skip GPT-2's initialisation: build on the meta
    # device and give the parameters real (uninitialised) storage. (Untied head only:
    # to_empty would not keep a tied head tied.)
    with torch.device("meta"):
        model = GPTModel(cfg)
    model = randomise_(model.to_empty(device="cpu"), seed=7).eval()
    assert_same_logits(model, cfg, make_ids(cfg, batch=2, n=6))


def test_comparison_catches_a_wrong_mapping():
    """The check has teeth: swapping two same-shaped tensors changes the reference logits."""
    cfg = GPTConfig(**SMALL, qkv_bias=True)
    model = build(cfg)
    ids = make_ids(cfg, batch=2, n=8)
    with torch.no_grad():
        ours = model(ids)
        for a, b in [
            ("trf_blocks.1.att.W_query.weight", "trf_blocks.1.att.W_key.weight"),
            ("trf_blocks.0.att.W_value.bias", "trf_blocks.0.att.W_query.bias"),
            ("trf_blocks.2.norm1.scale", "trf_blocks.2.norm2.scale"),
            ("trf_blocks.0.norm1.shift", "trf_blocks.1.norm1.shift"),
            ("trf_blocks.0.ff.layers.0.bias", "trf_blocks.2.ff.layers.0.bias"),
            ("final_norm.shift", "trf_blocks.2.att.out_proj.bias"),
        ]:
            sd = dict(model.state_dict())
            sd[a], sd[b] = sd[b], sd[a]
            wrong = reference_logits(sd, ids, cfg)
            assert not torch.allclose(ours, wrong, atol=ATOL, rtol=RTOL), f"{a} <-> {b} went unnoticed"


def test_logits_are_causal():
    """Changing a later token never changes the logits of earlier positions."""
    cfg = GPTConfig(**SMALL)
    model = build(cfg)
    ids = make_ids(cfg, batch=1, n=10)
    changed = ids.clone()
    changed[0, 6] = (changed[0, 6] + 1) % cfg.vocab_size
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6, rtol=0)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_parameter_names_are_the_books(qkv_bias):
    cfg = GPTConfig(**SMALL, qkv_bias=qkv_bias)
    with torch.device("meta"):
        model = GPTModel(cfg)
    assert [name for name, _ in model.named_parameters()] == book_parameter_names(3, qkv_bias)
    # No buffers: the causal mask is not stored. (The book's MultiHeadAttention registers
    # a non-trainable `att.mask` buffer, so its state_dict also has `trf_blocks.{i}.att.mask`
    # keys; they carry no learned information and must be dropped when loading one.)
    assert list(model.state_dict()) == book_parameter_names(3, qkv_bias)


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
        "trf_blocks.0.ff.layers.0.weight": (4 * d, d),
        "trf_blocks.0.ff.layers.0.bias": (4 * d,),
        "trf_blocks.0.ff.layers.2.weight": (d, 4 * d),
        "trf_blocks.0.norm1.scale": (d,),
        "final_norm.shift": (d,),
        "out_head.weight": (V, d),
    }
    for name, shape in expected.items():
        assert tuple(sd[name].shape) == shape, name


def test_a_book_state_dict_differs_from_ours_only_by_its_masks():
    """What chapter 8 promises: a state_dict saved from the book's model maps onto ours key
    for key, apart from the causal masks the book stores as (persistent) `att.mask`
    buffers. A strict load names exactly those keys; dropping them loads the weights, and
    the model then computes the reference's logits."""
    cfg = GPTConfig(**SMALL)
    source = build(cfg, seed=3).state_dict()
    T = cfg.context_length
    # The book's layout, built from its own names (not from our state_dict): its
    # parameters in registration order, with each block's mask after its attention.
    book_sd, masks = {}, []
    for name in book_parameter_names(cfg.n_layers, cfg.qkv_bias):
        book_sd[name] = source[name].clone()
        if name.endswith(".att.out_proj.bias"):
            masks.append(name.replace("out_proj.bias", "mask"))
            book_sd[masks[-1]] = torch.triu(torch.ones(T, T), diagonal=1)

    torch.manual_seed(0)
    with pytest.raises(RuntimeError) as err:
        GPTModel(cfg).load_state_dict(book_sd)  # strict
    message = str(err.value)
    assert "Unexpected key(s) in state_dict" in message and "Missing key(s)" not in message
    assert re.findall(r'"([^"]+)"', message) == masks  # the masks, and nothing else

    target = GPTModel(cfg).eval()  # a fresh one: the failed load above copied what it could
    result = target.load_state_dict({k: v for k, v in book_sd.items() if k not in masks})
    assert result.missing_keys == result.unexpected_keys == []
    assert_same_logits(target, cfg, make_ids(cfg, batch=2, n=T))
