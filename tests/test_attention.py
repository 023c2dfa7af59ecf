"""MultiHeadAttention and TransformerBlock (chapter 7), checked against first principles.

The library's attention is the book's computation written out (chapter 3 of the book):
projections, head split, scores, a registered causal `mask` buffer, softmax of the
scores divided by sqrt(head_dim), dropout on the weights, weighted values, heads merged,
out_proj. Here it is compared with a head-by-head reference built independently (a
loop over heads, a freshly built mask), with PyTorch's fused
`scaled_dot_product_attention`, and, bit for bit, with a restatement of the book's order
of operations; then causality, the mask buffer, dropout and the block's wiring are
checked on their own.
"""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_from_scratch.model import GPTConfig, MultiHeadAttention, TransformerBlock

GPT_CONFIG_124M = {
    "vocab_size": 50257,
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}

# Float32 rounding: different orders of the same sums agree to about 1e-6 here.
TOL = dict(atol=1e-5, rtol=1e-5)


def per_head_reference(mha, x, dropped_weights=None):
    """Causal multi-head attention one head at a time, with `mha`'s weights.

    Independent of the library's forward: each head's columns are cut out of the
    projections, the mask is built here (not read from the buffer), the scores are
    scaled before masking, and the heads are concatenated before out_proj. With
    `dropped_weights` (batch, heads, T, T), those weights replace the softmax's.
    """
    batch, tokens, _ = x.shape
    head_dim = mha.d_out // mha.num_heads
    queries, keys, values = mha.W_query(x), mha.W_key(x), mha.W_value(x)
    future = torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), diagonal=1)
    heads = []
    for h in range(mha.num_heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        q, k, v = queries[..., cols], keys[..., cols], values[..., cols]
        scores = q @ k.transpose(1, 2) / math.sqrt(head_dim)  # (batch, T, T)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        if dropped_weights is not None:
            weights = dropped_weights[:, h]
        heads.append(weights @ v)
    return mha.out_proj(torch.cat(heads, dim=-1))


def fused_reference(mha, x):
    """The same module's projections through PyTorch's fused attention kernel."""
    b, t, _ = x.shape

    def split(y):
        return y.view(b, t, mha.num_heads, mha.head_dim).transpose(1, 2)

    q, k, v = split(mha.W_query(x)), split(mha.W_key(x)), split(mha.W_value(x))
    context = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return mha.out_proj(context.transpose(1, 2).reshape(b, t, mha.d_out))


def book_computation(mha, x):
    """The book's order of operations, restated: mask with -inf, then divide by
    sqrt(head_dim) inside the softmax, dropout, transpose back, contiguous().view."""
    b, t, _ = x.shape
    k = mha.W_key(x).view(b, t, mha.num_heads, mha.head_dim).transpose(1, 2)
    q = mha.W_query(x).view(b, t, mha.num_heads, mha.head_dim).transpose(1, 2)
    v = mha.W_value(x).view(b, t, mha.num_heads, mha.head_dim).transpose(1, 2)
    scores = q @ k.transpose(2, 3)
    scores.masked_fill_(mha.mask.bool()[:t, :t], -torch.inf)
    weights = mha.dropout(torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1))
    context = (weights @ v).transpose(1, 2).contiguous().view(b, t, mha.d_out)
    return mha.out_proj(context)


# (batch, tokens, d_in, d_out, num_heads, qkv_bias)
SHAPES = [
    (1, 1, 8, 8, 1, False),  # a single token attends only to itself
    (2, 5, 16, 16, 4, False),
    (3, 7, 12, 24, 6, True),  # d_in != d_out, with query/key/value biases
    (2, 16, 64, 64, 8, True),  # as many tokens as context_length allows
    (1, 10, 32, 32, 32, False),  # head_dim 1
    (2, 9, 768, 768, 12, False),  # GPT-2 small's attention
    (2, 9, 768, 768, 12, True),  # the published GPT-2's, with biases
]


def make(d_in, d_out, num_heads, qkv_bias=False, dropout=0.1, context_length=16):
    return MultiHeadAttention(d_in, d_out, context_length=context_length,
                              dropout=dropout, num_heads=num_heads,
                              qkv_bias=qkv_bias)


@pytest.mark.parametrize("batch,tokens,d_in,d_out,num_heads,qkv_bias", SHAPES)
def test_matches_the_per_head_reference_and_the_fused_kernel(
    batch, tokens, d_in, d_out, num_heads, qkv_bias
):
    torch.manual_seed(123)
    mha = make(d_in, d_out, num_heads, qkv_bias).eval()
    assert (mha.W_query.bias is not None) == qkv_bias
    x = torch.randn(batch, tokens, d_in)
    with torch.no_grad():
        out = mha(x)
        assert out.shape == (batch, tokens, d_out)
        torch.testing.assert_close(out, per_head_reference(mha, x), **TOL)
        torch.testing.assert_close(out, fused_reference(mha, x), **TOL)


@settings(deadline=None, max_examples=60)
@given(
    batch=st.integers(1, 3),
    tokens=st.integers(1, 12),
    num_heads=st.integers(1, 4),
    head_dim=st.integers(1, 8),
    d_in=st.integers(1, 16),
    qkv_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_the_per_head_reference_on_random_shapes(
    batch, tokens, num_heads, head_dim, d_in, qkv_bias, seed
):
    torch.manual_seed(seed)
    mha = make(d_in, num_heads * head_dim, num_heads, qkv_bias, dropout=0.5,
               context_length=12).eval()
    x = torch.randn(batch, tokens, d_in)
    with torch.no_grad():
        torch.testing.assert_close(mha(x), per_head_reference(mha, x), **TOL)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_is_the_book_computation_bit_for_bit(train):
    """Same weights, same seed: exactly the book's numbers, dropout draws included."""
    torch.manual_seed(123)
    mha = make(768, 768, 12, dropout=0.1, context_length=32).train(train)
    x = torch.randn(2, 9, 768)
    with torch.no_grad():
        torch.manual_seed(7)
        ours = mha(x)
        torch.manual_seed(7)
        book = book_computation(mha, x)
    assert torch.equal(ours, book)


@pytest.mark.parametrize("position", [0, 3, 7])
def test_attention_is_causal(position):
    """Changing token `position` leaves every earlier output untouched."""
    torch.manual_seed(123)
    mha = make(32, 32, 4, dropout=0.0).eval()
    x = torch.randn(2, 8, 32)
    changed = x.clone()
    changed[:, position] = torch.randn(2, 32)
    with torch.no_grad():
        before, after = mha(x), mha(changed)
    torch.testing.assert_close(after[:, :position], before[:, :position],
                               atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, position], before[:, position], atol=1e-4)


def test_the_mask_buffer_is_what_hides_the_future():
    """Forward reads the registered buffer: emptied, the last token leaks backwards."""
    torch.manual_seed(123)
    mha = make(32, 32, 4, dropout=0.0).eval()
    x = torch.randn(1, 8, 32)
    changed = x.clone()
    changed[:, -1] += 1.0
    mha.mask.zero_()
    with torch.no_grad():
        difference = (mha(changed) - mha(x)).abs().amax(dim=-1)[0]
    assert difference[0] > 1e-4


def test_the_mask_buffer_is_the_books():
    mha = make(16, 16, 4, context_length=10)
    expected = torch.triu(torch.ones(10, 10), diagonal=1)
    assert mha.mask.dtype == torch.float32
    assert torch.equal(mha.mask, expected)  # 1 above the diagonal, 0 elsewhere
    state = mha.state_dict()
    assert set(state) == {
        "mask", "W_query.weight", "W_key.weight", "W_value.weight",
        "out_proj.weight", "out_proj.bias",
    }
    assert torch.equal(state["mask"], expected)  # persistent: saved and loaded
    other = make(16, 16, 4, context_length=10)
    other.load_state_dict(state, strict=True)
    assert torch.equal(other.W_query.weight, mha.W_query.weight)
    with pytest.raises(RuntimeError, match="mask"):
        make(16, 16, 4, context_length=11).load_state_dict(state, strict=True)


class Recorder:
    """A forward hook on `mha.dropout`: what went in (the attention weights) and out."""

    def __init__(self, module):
        self.calls = []
        module.register_forward_hook(
            lambda mod, inputs, output: self.calls.append((inputs[0], output)))


def test_dropout_acts_on_the_attention_weights_in_training_only():
    torch.manual_seed(123)
    p = 0.5
    mha = make(16, 16, 2, dropout=p, context_length=8)
    recorder = Recorder(mha.dropout)
    x = torch.randn(4, 8, 16)
    with torch.no_grad():
        out = mha.train()(x)
        (weights, dropped), = recorder.calls
        # What dropout received are the causal attention weights...
        assert weights.shape == (4, 2, 8, 8)
        torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2, 8))
        assert torch.all(weights.triu(diagonal=1) == 0)
        # ...and in training it zeroed some, scaling the survivors by 1 / (1 - p).
        kept = dropped != 0
        assert 0 < kept.float().mean() < 1
        torch.testing.assert_close(dropped[kept], weights[kept] / (1 - p))
        # The output is made from exactly those dropped weights.
        torch.testing.assert_close(out, per_head_reference(mha, x, dropped), **TOL)

        recorder.calls.clear()
        out = mha.eval()(x)
        (weights, dropped), = recorder.calls
        assert torch.equal(dropped, weights)  # eval: the identity
        torch.testing.assert_close(out, per_head_reference(mha, x), **TOL)


@pytest.mark.parametrize(
    "make_module",
    [
        lambda: make(32, 32, 4, dropout=0.5),
        lambda: TransformerBlock(GPTConfig(emb_dim=32, n_heads=4, context_length=16,
                                           drop_rate=0.1)),
    ],
    ids=["MultiHeadAttention", "TransformerBlock"],
)
def test_dropout_is_random_in_training_and_off_in_eval(make_module):
    torch.manual_seed(123)
    module = make_module()
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        module.train()
        assert not torch.allclose(module(x), module(x)), "training should drop"
        module.eval()
        assert torch.equal(module(x), module(x)), "eval should be deterministic"


def test_forward_takes_the_input_alone():
    for cls in (MultiHeadAttention, TransformerBlock):
        assert list(inspect.signature(cls.forward).parameters) == ["self", "x"]


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError,
                       match=r"d_out \(18\) must be divisible by num_heads \(4\)"):
        MultiHeadAttention(16, 18, context_length=8, dropout=0.0, num_heads=4)


# --- TransformerBlock ---------------------------------------------------------------


def test_transformer_block_is_causal():
    torch.manual_seed(123)
    block = TransformerBlock(GPTConfig(emb_dim=32, n_heads=4, context_length=16)).eval()
    x = torch.randn(1, 8, 32)
    changed = x.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        difference = (block(changed) - block(x)).abs().amax(dim=-1)[0]
    assert difference[:-1].max() < 1e-6
    assert difference[-1] > 1e-3


def test_transformer_block_shape_in_is_shape_out_book_config():
    torch.manual_seed(123)
    x = torch.rand(2, 4, 768)
    block = TransformerBlock(GPT_CONFIG_124M)
    assert block(x).shape == x.shape == (2, 4, 768)


@pytest.mark.parametrize("batch,tokens", [(1, 1), (3, 5), (2, 16)])
@pytest.mark.parametrize("emb_dim,n_heads,qkv_bias",
                         [(8, 1, False), (24, 6, True), (64, 4, False)])
def test_transformer_block_shape_in_is_shape_out(batch, tokens, emb_dim, n_heads,
                                                 qkv_bias):
    cfg = GPTConfig(emb_dim=emb_dim, n_heads=n_heads, context_length=16,
                    qkv_bias=qkv_bias)
    for config in (cfg, cfg.to_dict()):  # a GPTConfig or the book's dict
        block = TransformerBlock(config)
        x = torch.randn(batch, tokens, emb_dim)
        assert block(x).shape == x.shape


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_transformer_block_is_the_books_two_shortcut_steps(train):
    """h = x + drop(att(norm1(x))); y = h + drop(ff(norm2(h))), bit for bit, with
    non-trivial LayerNorm parameters and, in training, the same dropout draws."""
    torch.manual_seed(123)
    block = TransformerBlock(GPTConfig(emb_dim=32, n_heads=4, context_length=16,
                                       drop_rate=0.2)).train(train)
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.scale.normal_(1.0, 0.5)
            norm.shift.normal_(0.0, 0.5)
        x = 3.0 * torch.randn(2, 6, 32) + 1.0
        torch.manual_seed(7)
        h = x + block.drop_shortcut(block.att(block.norm1(x)))
        expected = h + block.drop_shortcut(block.ff(block.norm2(h)))
        torch.manual_seed(7)
        assert torch.equal(block(x), expected)


def test_transformer_block_parameter_count():
    with torch.device("meta"):  # shapes only, no memory or initialisation
        block = TransformerBlock(GPT_CONFIG_124M)
        with_bias = TransformerBlock({**GPT_CONFIG_124M, "qkv_bias": True})
    assert sum(p.numel() for p in block.parameters()) == 7_085_568
    assert sum(p.numel() for p in with_bias.parameters()) == 7_085_568 + 3 * 768


def test_transformer_block_state_dict_is_the_books():
    block = TransformerBlock(GPTConfig(emb_dim=16, n_heads=4, context_length=8))
    att = ["mask", "W_query.weight", "W_key.weight", "W_value.weight",
           "out_proj.weight", "out_proj.bias"]
    ff = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
    norms = ["norm1.scale", "norm1.shift", "norm2.scale", "norm2.shift"]
    assert set(block.state_dict()) == (
        {f"att.{k}" for k in att} | {f"ff.{k}" for k in ff} | set(norms))
    assert [name for name, _ in block.named_buffers()] == ["att.mask"]
    assert block.att.mask.shape == (8, 8)
    assert isinstance(block.att.dropout, torch.nn.Dropout)
    assert isinstance(block.drop_shortcut, torch.nn.Dropout)
