"""MultiHeadAttention and TransformerBlock (chapter 7), checked against first principles.

The library computes attention with PyTorch's fused `scaled_dot_product_attention`. Here it
is compared with the formula written out by hand, softmax(Q K^T / sqrt(d_k) + M) V with an
explicit causal mask, using the library layer's own weights; then causality, shapes and
dropout are checked on their own.
"""

import math

import pytest
import torch
from hypothesis import given
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


def explicit_attention(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Causal multi-head attention step by step, with `mha`'s weights and no dropout.

    Independent of the library's forward: heads are cut out of the projection weights
    one by one, the mask is built and applied with masked_fill(-inf), the softmax and the
    weighted sum are written out, and the heads are concatenated before out_proj.
    """
    batch, tokens, _ = x.shape
    head_dim = mha.d_out // mha.num_heads
    queries, keys, values = mha.W_query(x), mha.W_key(x), mha.W_value(x)
    future = torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), diagonal=1)
    heads = []
    for h in range(mha.num_heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        q, k, v = queries[..., cols], keys[..., cols], values[..., cols]  # (batch, tokens, hd)
        scores = q @ k.transpose(1, 2) / math.sqrt(head_dim)  # (batch, tokens, tokens)
        scores = scores.masked_fill(future, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        heads.append(weights @ v)
    return mha.out_proj(torch.cat(heads, dim=-1))


# (batch, tokens, d_in, d_out, num_heads, qkv_bias)
SHAPES = [
    (1, 1, 8, 8, 1, False),  # a single token attends only to itself
    (2, 5, 16, 16, 4, False),
    (3, 7, 12, 24, 6, True),  # d_in != d_out, with query/key/value biases
    (2, 16, 64, 64, 8, True),
    (1, 10, 32, 32, 32, False),  # head_dim 1
    (2, 9, 768, 768, 12, False),  # GPT-2 small's attention
    (2, 9, 768, 768, 12, True),  # the published GPT-2's, with biases
]


@pytest.mark.parametrize("batch,tokens,d_in,d_out,num_heads,qkv_bias", SHAPES)
def test_library_matches_explicit_attention(batch, tokens, d_in, d_out, num_heads, qkv_bias):
    torch.manual_seed(123)
    mha = MultiHeadAttention(d_in, d_out, context_length=32, dropout=0.1,
                             num_heads=num_heads, qkv_bias=qkv_bias).eval()
    assert (mha.W_query.bias is not None) == qkv_bias
    x = torch.randn(batch, tokens, d_in)
    with torch.no_grad():
        fused, reference = mha(x), explicit_attention(mha, x)
    assert fused.shape == (batch, tokens, d_out)
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)


@given(
    batch=st.integers(1, 3),
    tokens=st.integers(1, 12),
    num_heads=st.integers(1, 4),
    head_dim=st.integers(1, 8),
    d_in=st.integers(1, 16),
    qkv_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_library_matches_explicit_attention_on_random_shapes(
    batch, tokens, num_heads, head_dim, d_in, qkv_bias, seed
):
    torch.manual_seed(seed)
    d_out = num_heads * head_dim
    mha = MultiHeadAttention(d_in, d_out, context_length=12, dropout=0.5,
                             num_heads=num_heads, qkv_bias=qkv_bias).eval()
    x = torch.randn(batch, tokens, d_in)
    with torch.no_grad():
        torch.testing.assert_close(mha(x), explicit_attention(mha, x), atol=1e-5, rtol=1e-5)


def test_training_mode_without_dropout_is_the_same_function():
    torch.manual_seed(123)
    mha = MultiHeadAttention(32, 32, context_length=16, dropout=0.0, num_heads=4, qkv_bias=True)
    assert mha.training
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        torch.testing.assert_close(mha(x), explicit_attention(mha, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position", [0, 3, 7])
def test_attention_is_causal(position):
    """Changing token `position` leaves every earlier output untouched."""
    torch.manual_seed(123)
    mha = MultiHeadAttention(32, 32, context_length=16, dropout=0.0, num_heads=4).eval()
    x = torch.randn(2, 8, 32)
    changed = x.clone()
    changed[:, position] = torch.randn(2, 32)
    with torch.no_grad():
        before, after = mha(x), mha(changed)
    torch.testing.assert_close(after[:, :position], before[:, :position], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, position], before[:, position], atol=1e-4)


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


def test_transformer_block_shape_in_is_shape_out_default_config():
    torch.manual_seed(123)
    x = torch.rand(2, 4, 768)
    block = TransformerBlock(GPT_CONFIG_124M)
    assert block(x).shape == x.shape == (2, 4, 768)


@pytest.mark.parametrize("batch,tokens", [(1, 1), (3, 5), (2, 16)])
@pytest.mark.parametrize("emb_dim,n_heads,qkv_bias", [(8, 1, False), (24, 6, True), (64, 4, False)])
def test_transformer_block_shape_in_is_shape_out(batch, tokens, emb_dim, n_heads, qkv_bias):
    cfg = GPTConfig(emb_dim=emb_dim, n_heads=n_heads, context_length=16, qkv_bias=qkv_bias)
    for config in (cfg, cfg.to_dict()):  # a GPTConfig or the book's dict
        block = TransformerBlock(config)
        x = torch.randn(batch, tokens, emb_dim)
        assert block(x).shape == x.shape


def test_transformer_block_follows_the_pre_norm_equations():
    """h = x + MHA(LN1(x)); y = h + FFN(LN2(h)), with non-trivial LayerNorm parameters."""
    torch.manual_seed(123)
    block = TransformerBlock(GPTConfig(emb_dim=32, n_heads=4, context_length=16)).eval()
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.scale.normal_(1.0, 0.5)
            norm.shift.normal_(0.0, 0.5)
        x = 3.0 * torch.randn(2, 6, 32) + 1.0
        h = x + block.att(block.norm1(x))
        expected = h + block.ff(block.norm2(h))
        torch.testing.assert_close(block(x), expected)


def test_transformer_block_parameter_count():
    with torch.device("meta"):  # shapes only, no memory or initialisation
        block = TransformerBlock(GPT_CONFIG_124M)
        with_bias = TransformerBlock({**GPT_CONFIG_124M, "qkv_bias": True})
    assert sum(p.numel() for p in block.parameters()) == 7_085_568
    assert sum(p.numel() for p in with_bias.parameters()) == 7_085_568 + 3 * 768


def test_book_parameter_names_and_no_mask_buffer():
    block = TransformerBlock(GPTConfig(emb_dim=16, n_heads=4, context_length=8))
    names = set(block.state_dict())
    for layer in ("W_query", "W_key", "W_value"):
        assert f"att.{layer}.weight" in names
    assert {"att.out_proj.weight", "att.out_proj.bias", "norm1.scale", "norm2.shift"} <= names
    assert list(block.buffers()) == []  # the fused kernel needs no stored causal mask


@pytest.mark.parametrize(
    "make",
    [
        lambda: MultiHeadAttention(32, 32, context_length=16, dropout=0.5, num_heads=4),
        lambda: TransformerBlock(GPTConfig(emb_dim=32, n_heads=4, context_length=16, drop_rate=0.1)),
    ],
    ids=["MultiHeadAttention", "TransformerBlock"],
)
def test_dropout_is_random_in_training_and_off_in_eval(make):
    torch.manual_seed(123)
    module = make()
    x = torch.randn(2, 8, 32)
    with torch.no_grad():
        module.train()
        first, second = module(x), module(x)
        assert not torch.allclose(first, second), "training mode should drop at random"
        module.eval()
        first, second = module(x), module(x)
        assert torch.equal(first, second), "eval mode should be deterministic"
        if isinstance(module, MultiHeadAttention):
            torch.testing.assert_close(first, explicit_attention(module, x), atol=1e-5, rtol=1e-5)


def test_attention_dropout_acts_on_the_weights():
    """With every weight dropped but one per row, dropout must reach inside the attention."""
    torch.manual_seed(123)
    mha = MultiHeadAttention(16, 16, context_length=8, dropout=0.9, num_heads=2).train()
    x = torch.randn(4, 8, 16)
    with torch.no_grad():
        outputs = torch.stack([mha(x) for _ in range(20)])
    # Dropped weights give different context vectors, so outputs vary between calls even
    # at the first position, whose only weight (on itself) is either kept or dropped.
    assert outputs[:, :, 0].std(dim=0).max() > 1e-3
    # A fully dropped row leaves only out_proj's bias: that happens at position 0.
    bias = mha.out_proj.bias
    assert any(torch.allclose(o[b, 0], bias) for o in outputs for b in range(4))


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(16, 18, context_length=8, dropout=0.0, num_heads=4)
