"""LayerNorm (chapter 3) and GELU (chapter 4): the book's formulas, written out.

Two things are checked. First, that the modules compute the book's formulas in the
book's order of operations, bit for bit (the coordinator's logits test relies on it,
and it fails if a fused kernel is swapped in: F.layer_norm and F.gelu round
differently). Second, that these are the functions GPT-2 was trained with: layer norm
with the biased variance and eps=1e-5, GELU in its tanh approximation. So we compare
them with torch's own implementations, values and gradients, within float32 rounding,
and pin the size of the tanh approximation's error against the exact (erf) GELU.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from llm_from_scratch.model import GELU, LayerNorm

SHAPES = [(5,), (2, 5), (4, 1), (3, 7, 16), (2, 4, 768), (2, 3, 4, 32)]
# emb_dim=1 is left out of the float32 gradient comparison: the input gradient is exactly
# 0 there, and ours reaches it by cancellation amplified by 1/sqrt(eps) (float32 noise
# ~1e-5). The float64 and hypothesis tests below cover emb_dim=1 too.
GRAD_SHAPES = [s for s in SHAPES if s[-1] > 1]


def book_layer_norm(x, scale, shift, eps=1e-5):
    """The book's LayerNorm.forward, restated."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    norm_x = (x - mean) / torch.sqrt(var + eps)
    return scale * norm_x + shift


def book_gelu(x):
    """The book's GELU.forward, restated."""
    return 0.5 * x * (1 + torch.tanh(
        torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))
    ))


def pair(emb_dim: int, eps: float = 1e-5, seed: int = 0, trivial: bool = False):
    """Our LayerNorm and torch's, with the same (random unless trivial) scale and shift."""
    ours = LayerNorm(emb_dim, eps=eps)
    theirs = torch.nn.LayerNorm(emb_dim, eps=eps)
    if not trivial:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            ours.scale.copy_(torch.randn(emb_dim, generator=gen))
            ours.shift.copy_(torch.randn(emb_dim, generator=gen))
            theirs.weight.copy_(ours.scale)
            theirs.bias.copy_(ours.shift)
    return ours, theirs


# --- LayerNorm ---------------------------------------------------------------


def test_layernorm_starts_as_plain_standardisation():
    ln = LayerNorm(768)
    assert ln.eps == 1e-5
    assert torch.equal(ln.scale, torch.ones(768))
    assert torch.equal(ln.shift, torch.zeros(768))
    assert {name for name, _ in ln.named_parameters()} == {"scale", "shift"}
    assert sum(p.numel() for p in ln.parameters()) == 2 * 768


def test_layernorm_state_dict_is_the_books():
    ln = LayerNorm(8)
    assert list(ln.state_dict()) == ["scale", "shift"]
    book = {"scale": torch.randn(8), "shift": torch.randn(8)}
    ln.load_state_dict(book, strict=True)
    assert torch.equal(ln.scale, book["scale"]) and torch.equal(ln.shift, book["shift"])


@pytest.mark.parametrize("eps", [1e-5, 1e-2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_layernorm_is_the_books_formula_bit_for_bit(shape, eps):
    torch.manual_seed(123)
    x = 3.0 * torch.randn(shape) + 1.5
    ours, _ = pair(shape[-1], eps=eps, seed=4)
    with torch.no_grad():
        assert torch.equal(ours(x), book_layer_norm(x, ours.scale, ours.shift, eps))


def test_layernorm_is_not_the_fused_kernel():
    """Guards the bit-for-bit test above: on this input the fused kernel rounds
    differently, so a swap to F.layer_norm would not pass unnoticed."""
    torch.manual_seed(123)
    x = 3.0 * torch.randn(2, 4, 768) + 1.0
    ours, _ = pair(768, seed=5)
    with torch.no_grad():
        fused = F.layer_norm(x, (768,), ours.scale, ours.shift, ours.eps)
        assert not torch.equal(book_layer_norm(x, ours.scale, ours.shift), fused)
        torch.testing.assert_close(ours(x), fused)  # but within float32 rounding


@pytest.mark.parametrize("trivial", [True, False], ids=["identity-affine", "random-affine"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_layernorm_matches_torch(shape, trivial):
    torch.manual_seed(123)
    x = 3.0 * torch.randn(shape) + 1.5  # deliberately not standardised already
    ours, theirs = pair(shape[-1], trivial=trivial)
    out = ours(x)
    assert out.shape == x.shape
    # float32 rounding: the two compute the same formula in a different order
    torch.testing.assert_close(out, theirs(x), rtol=1.3e-6, atol=1e-5)


@pytest.mark.parametrize("shape", GRAD_SHAPES, ids=str)
def test_layernorm_gradients_match_torch(shape):
    torch.manual_seed(123)
    x = 2.0 * torch.randn(shape) - 0.5
    upstream = torch.randn(shape)  # a non-trivial gradient arriving from above
    ours, theirs = pair(shape[-1], seed=1)
    x_ours = x.clone().requires_grad_()
    x_theirs = x.clone().requires_grad_()
    (ours(x_ours) * upstream).sum().backward()
    (theirs(x_theirs) * upstream).sum().backward()
    # Gradients are sums over many elements, so allow float32 accumulation error.
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.scale.grad, theirs.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.shift.grad, theirs.bias.grad, rtol=1e-4, atol=1e-5)


def test_layernorm_gradients_match_torch_in_float64():
    torch.manual_seed(123)
    x = torch.randn(3, 5, 64, dtype=torch.float64)
    upstream = torch.randn(3, 5, 64, dtype=torch.float64)
    ours, theirs = pair(64, seed=2)
    ours, theirs = ours.double(), theirs.double()
    x_ours = x.clone().requires_grad_()
    x_theirs = x.clone().requires_grad_()
    (ours(x_ours) * upstream).sum().backward()
    (theirs(x_theirs) * upstream).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.scale.grad, theirs.weight.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.shift.grad, theirs.bias.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.1])
def test_layernorm_eps_sits_inside_the_square_root(eps):
    torch.manual_seed(123)
    x = 0.05 * torch.randn(4, 10)  # small variance, so eps visibly matters
    ours, theirs = pair(10, eps=eps, trivial=True)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1.3e-6, atol=1e-5)
    # With scale 1 and shift 0 the output variance is var / (var + eps), biased variance.
    var = x.var(dim=-1, unbiased=False)
    torch.testing.assert_close(ours(x).var(dim=-1, unbiased=False), var / (var + eps), rtol=1e-4, atol=1e-6)


def test_layernorm_uses_the_biased_variance():
    torch.manual_seed(123)
    x = torch.randn(8, 6)
    out = LayerNorm(6, eps=0.0)(x)
    torch.testing.assert_close(out.mean(dim=-1), torch.zeros(8), rtol=0, atol=1e-6)
    torch.testing.assert_close(out.var(dim=-1, unbiased=False), torch.ones(8), rtol=0, atol=1e-5)
    # The unbiased variance of the output is then d / (d - 1), not 1.
    torch.testing.assert_close(out.var(dim=-1, unbiased=True), torch.full((8,), 6 / 5), rtol=0, atol=1e-5)


def test_layernorm_of_a_constant_vector_is_its_shift():
    ours, theirs = pair(4, seed=3)
    constant = torch.full((2, 4), 2.5)
    out = ours(constant)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ours.shift.detach().expand(2, 4), rtol=0, atol=1e-6)
    torch.testing.assert_close(out, theirs(constant), rtol=1.3e-6, atol=1e-5)


@given(
    shape=st.lists(st.integers(1, 6), min_size=0, max_size=2),
    emb_dim=st.integers(1, 48),
    seed=st.integers(0, 2**16),
    spread=st.floats(0.01, 100.0),
    offset=st.floats(-100.0, 100.0),
)
def test_layernorm_matches_torch_for_any_shape_and_scale(shape, emb_dim, seed, spread, offset):
    # float64: with a large offset and a small spread, x - mean cancels most digits, and in
    # float32 two correct implementations could then differ by ~1e-4 (rounding, not a bug).
    gen = torch.Generator().manual_seed(seed)
    x = spread * torch.randn(*shape, emb_dim, generator=gen, dtype=torch.float64) + offset
    ours, theirs = pair(emb_dim, seed=seed)
    ours, theirs = ours.double(), theirs.double()
    x_ours = x.clone().requires_grad_()
    x_theirs = x.clone().requires_grad_()
    out = ours(x_ours)
    torch.testing.assert_close(out, theirs(x_theirs), rtol=1e-9, atol=1e-9)
    out.sum().backward()
    theirs(x_theirs).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=1e-7, atol=1e-7)


# --- GELU --------------------------------------------------------------------


def test_gelu_is_a_parameterless_module():
    assert isinstance(GELU(), torch.nn.Module)
    assert list(GELU().parameters()) == []
    assert GELU().state_dict() == {}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gelu_is_the_books_formula_bit_for_bit(shape, dtype):
    torch.manual_seed(123)
    x = (4.0 * torch.randn(shape)).to(dtype)
    assert torch.equal(GELU()(x), book_gelu(x))


def test_gelu_is_not_the_fused_kernel():
    """Guards the bit-for-bit test above: F.gelu(approximate="tanh") rounds
    differently on this input, so a swap would not pass unnoticed."""
    torch.manual_seed(123)
    x = 4.0 * torch.randn(10_000)
    fused = F.gelu(x, approximate="tanh")
    assert not torch.equal(book_gelu(x), fused)
    torch.testing.assert_close(GELU()(x), fused, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
def test_gelu_keeps_the_input_dtype(dtype):
    # sqrt(2/pi) is a 0-dim float32 tensor, which must not up- or downcast the input
    x = torch.linspace(-3, 3, 13, dtype=dtype)
    assert GELU()(x).dtype == dtype


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gelu_matches_torch_tanh_approximation(shape):
    torch.manual_seed(123)
    x = 4.0 * torch.randn(shape)
    out = GELU()(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, F.gelu(x, approximate="tanh"), rtol=0, atol=1e-6)


def test_gelu_matches_torch_on_a_wide_grid_and_in_both_tails():
    x = torch.linspace(-20, 20, 40001)
    torch.testing.assert_close(GELU()(x), F.gelu(x, approximate="tanh"), rtol=0, atol=1e-6)
    # In float64 the two differ by ~1e-8: the book takes sqrt(2/pi) as a float32
    # tensor, torch's kernel in float64. Far below the 4.7e-4 gap to exact GELU.
    x64 = x.double()
    torch.testing.assert_close(GELU()(x64), F.gelu(x64, approximate="tanh"), rtol=1e-7, atol=1e-7)
    # far out, GELU is ReLU: x for large positive inputs, (almost) 0 for large negative ones
    far = torch.tensor([-50.0, -20.0, 20.0, 50.0])
    torch.testing.assert_close(GELU()(far), torch.relu(far), rtol=0, atol=1e-6)


def test_gelu_gradients_match_torch():
    torch.manual_seed(123)
    x = 4.0 * torch.randn(1000, dtype=torch.float64)
    x_ours = x.clone().requires_grad_()
    x_theirs = x.clone().requires_grad_()
    GELU()(x_ours).sum().backward()
    F.gelu(x_theirs, approximate="tanh").sum().backward()
    # float64, up to the float32 constant sqrt(2/pi) (see above)
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=1e-6, atol=1e-7)


def test_gelu_tanh_approximation_gap_to_exact_gelu():
    x = torch.linspace(-6, 6, 120001, dtype=torch.float64)
    gap = (GELU()(x) - F.gelu(x)).abs()  # F.gelu(x) is the exact x * Phi(x)
    assert 4e-4 < gap.max().item() < 5e-4
    # The gap is even (both formulas satisfy g(x) - g(-x) = x), so it peaks at both
    # +-2.7; look for the peak on the negative side, where the book points to it.
    torch.testing.assert_close(gap, gap.flip(0), rtol=0, atol=1e-12)
    negative = x <= 0
    where = x[negative][gap[negative].argmax()].item()
    assert abs(where - (-2.7)) <= 0.2
    assert gap[negative].max().item() == gap.max().item()


def test_exact_gelu_reference_is_x_times_normal_cdf():
    # Guards the reference itself: F.gelu without `approximate` is x * Phi(x).
    x = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    phi = 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
    torch.testing.assert_close(F.gelu(x), x * phi, rtol=0, atol=1e-12)
