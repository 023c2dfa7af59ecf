"""llm_from_scratch.cpu (chapter 13): the fused kernels and the CPU paths change how the
model computes, not what. Equality tests force them with use_fused and use_path, so they
never depend on timing; the decision to adopt one is tested with fake timings."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch import cpu
from llm_from_scratch.cpu import (FUSED, FastLinear, FusedAttention, FusedGELU, FusedLayerNorm,
                                  faster, one_row_product, optimize, sliced_product, use_fused,
                                  use_path)
from llm_from_scratch.generate import generate
from llm_from_scratch.model import GELU, GPTConfig, GPTModel, LayerNorm, MultiHeadAttention

SMALL = GPTConfig(vocab_size=1000, context_length=32, emb_dim=64, n_heads=4, n_layers=2, qkv_bias=True)
# GPT-2 small's width, two blocks and a small vocabulary: quick to build, real layer shapes.
GPT2_WIDTH = GPTConfig(vocab_size=2000, context_length=64, emb_dim=768, n_heads=12, n_layers=2, tie_weights=True)


def every_path(model: nn.Module) -> nn.Module:
    """Every fused kernel and every linear path, forced."""
    for layer in list(model.modules()):
        if type(layer) in FUSED:
            use_fused(layer)
        if isinstance(layer, nn.Linear):
            use_path(layer, "one_row")
            use_path(layer, "sliced")
    return model


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def assert_same_as_linear(product, shape, out_features, bias):
    """product(x, weight, bias) gives F.linear's result, in F.linear's shape."""
    torch.manual_seed(0)
    layer = nn.Linear(64, out_features, bias=bias)
    x = torch.randn(shape)
    with torch.no_grad():
        out = product(x, layer.weight, layer.bias)
        assert out.shape == (*shape[:-1], out_features)
        torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize("n_threads", [1, 2, 3, 4])
@pytest.mark.parametrize("out_features", [1001, 96, 3, 1])  # remainders, even, fewer rows than threads
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 64), (1, 64), (64,)])
def test_one_row_equals_one_product(threads, n_threads, out_features, bias, shape):
    threads(n_threads)
    assert_same_as_linear(one_row_product, shape, out_features, bias)


@pytest.mark.parametrize("shape", [(1, 1, 64), (3, 1, 64), (2, 5, 64), (7, 64), (1, 300, 64)])
@pytest.mark.parametrize("out_features", [1000, 1024, 1025, 511])  # whole, partial and single slices
@pytest.mark.parametrize("bias", [True, False])
def test_sliced_equals_one_product(shape, out_features, bias):
    assert_same_as_linear(sliced_product, shape, out_features, bias)


@pytest.mark.parametrize("shape", [(1, 1, 64), (4, 64), (2, 9, 64)])
def test_fast_linear_equals_linear(shape):
    torch.manual_seed(0)
    layer = nn.Linear(64, 1030)
    x = torch.randn(shape)
    with torch.no_grad():
        expected = layer(x)
        every_path(layer)
        assert type(layer) is FastLinear and layer.one_row and layer.sliced
        torch.testing.assert_close(layer(x), expected)


def test_paths_are_taken_only_without_gradients_and_on_the_cpu(monkeypatch):
    # Spies on the two paths: equal outputs or gradients could not tell which one ran.
    calls = []
    monkeypatch.setattr(cpu, "one_row_product", lambda *a: calls.append("one_row") or F.linear(*a))
    monkeypatch.setattr(cpu, "sliced_product", lambda *a: calls.append("sliced") or F.linear(*a))
    layer = every_path(nn.Linear(8, 600))
    layer(torch.randn(1, 8)), layer(torch.randn(3, 8))  # weight requires grad: plain
    assert calls == []
    with torch.no_grad():
        layer(torch.randn(1, 8)), layer(torch.randn(3, 8))
    assert calls == ["one_row", "sliced"]
    layer.requires_grad_(False)
    layer(torch.randn(1, 8))  # frozen weights and no grad-requiring input: the path
    layer(torch.randn(1, 8, requires_grad=True))  # the input needs a gradient: plain
    assert calls == ["one_row", "sliced", "one_row"]
    # Off the CPU (the meta device stands in for a GPU here): plain, even without gradients.
    elsewhere = every_path(nn.Linear(8, 600, device="meta"))
    with torch.no_grad():
        elsewhere(torch.randn(1, 8, device="meta")), elsewhere(torch.randn(3, 8, device="meta"))
    assert calls == ["one_row", "sliced", "one_row"]


def test_low_precision_and_autocast_keep_their_dtype():
    torch.manual_seed(0)
    layer = nn.Linear(64, 1030)
    x = torch.randn(2, 3, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = [layer(x), layer(x[:1, :1])]
        every_path(layer)
        got = [layer(x), layer(x[:1, :1])]
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype == torch.bfloat16
        torch.testing.assert_close(g, e, rtol=2e-2, atol=2e-2)
    layer = layer.to(torch.bfloat16)
    with torch.no_grad():
        assert layer(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("cfg", [SMALL, dataclasses.replace(SMALL, qkv_bias=False, tie_weights=True)])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 1), (2, 20)])
def test_model_outputs_are_unchanged(cfg, shape):
    torch.manual_seed(0)
    model = GPTModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, shape)
    with torch.no_grad():
        expected = model(ids)
        every_path(model)
        torch.testing.assert_close(model(ids), expected, rtol=1e-5, atol=1e-5)


def test_greedy_tokens_are_unchanged_at_gpt2_width():
    torch.manual_seed(123)
    model = GPTModel(GPT2_WIDTH).eval()
    prompt = torch.randint(0, GPT2_WIDTH.vocab_size, (2, 5))
    expected = generate(model, prompt, 12, use_cache=True)
    assert torch.equal(generate(model, prompt, 12, use_cache=False), expected)
    every_path(model)
    assert sum(type(m) is FastLinear for m in model.modules()) == 13  # 6 per block, and the head
    assert sum(type(m) in FUSED.values() for m in model.modules()) == 9  # 4 per block, final norm
    assert torch.equal(generate(model, prompt, 12, use_cache=True), expected)
    assert torch.equal(generate(model, prompt, 12, use_cache=False), expected)


def test_parameters_state_dict_and_tying_are_unchanged():
    torch.manual_seed(0)
    model = GPTModel(dataclasses.replace(SMALL, tie_weights=True))
    params = dict(model.named_parameters())
    state = model.state_dict()
    every_path(model)
    assert model.out_head.weight is model.tok_emb.weight
    assert all(p is params[name] for name, p in model.named_parameters())
    after = model.state_dict()
    assert list(after) == list(state)
    assert all(torch.equal(after[k], state[k]) for k in state)
    GPTModel(dataclasses.replace(SMALL, tie_weights=True)).load_state_dict(after)


def test_training_is_unchanged():
    # Dropout off: the fused attention kernel draws its dropout mask its own way.
    cfg = dataclasses.replace(SMALL, drop_rate=0.0)
    torch.manual_seed(0)
    plain = GPTModel(cfg)
    fast = every_path(GPTModel(cfg))
    fast.load_state_dict(plain.state_dict())
    ids = torch.randint(0, cfg.vocab_size, (2, 9))
    for model in (plain, fast):
        F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten()).backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind, make, width", [
    (LayerNorm, lambda: LayerNorm(48), 48),
    (GELU, GELU, 48),
    (MultiHeadAttention, lambda: MultiHeadAttention(48, 48, 16, 0.0, 4, qkv_bias=True), 48),
])
@pytest.mark.parametrize("tokens", [1, 7, 16])
def test_each_fused_kernel_computes_the_books_formula(kind, make, width, tokens):
    torch.manual_seed(0)
    module = make().eval()
    with torch.no_grad():
        for p in module.parameters():  # away from the identity, so every parameter counts
            p.copy_(torch.randn(p.shape))
        x = torch.randn(3, tokens, width)
        expected = module(x)
        use_fused(module)
        assert type(module) is FUSED[kind]
        got = module(x)
    assert not torch.equal(got, expected) or tokens == 1  # really another kernel...
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # ...the same numbers


def test_fused_attention_is_causal_and_drops_weights_in_training_only():
    torch.manual_seed(0)
    att = MultiHeadAttention(16, 16, 8, 0.5, 2)
    use_fused(att)
    x = torch.randn(1, 6, 16)
    changed = x.clone()
    changed[:, 4:] += 1.0  # a later token changes
    att.eval()
    with torch.no_grad():
        assert torch.equal(att(x), att(x))
        torch.testing.assert_close(att(changed)[:, :4], att(x)[:, :4])
        att.train()
        assert not torch.equal(att(x), att(x))  # dropout on the weights


def test_use_fused_refuses_other_modules():
    for module in (nn.Linear(2, 2), nn.LayerNorm(4), FusedGELU()):
        with pytest.raises(TypeError, match="use_fused needs a LayerNorm, GELU or MultiHeadAttention"):
            use_fused(module)


def test_optimize_leaves_the_global_generator_alone():
    model = GPTModel(SMALL).eval()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    optimize(model)
    assert torch.equal(torch.rand(3), expected)


def fake_runs(plain_s, fast_s):
    """plain and fast runs that take the given (fake) seconds on a fake clock."""
    now = [0.0]
    plain_times, fast_times = iter(plain_s), iter(fast_s)

    def plain():
        now[0] += next(plain_times)

    def fast():
        now[0] += next(fast_times)

    return plain, fast, lambda: now[0]


@pytest.mark.parametrize("plain_s, fast_s, adopted", [
    ([1.0] * 6, [0.5] * 6, True),
    ([1.0] * 6, [0.94] * 6, True),  # just inside the margin
    ([1.0] * 6, [0.97] * 6, False),  # faster, but within the margin: noise
    ([1.0] * 6, [1.2] * 6, False),
    # One lucky fast run does not count: the medians decide (the first run is the warm-up).
    ([9.0, 1.0, 1.0, 1.0, 1.0, 1.0], [9.0, 0.1, 1.1, 1.1, 1.1, 0.1], False),
    # Nor does one slow run of a path that is clearly faster otherwise.
    ([9.0, 1.0, 1.0, 1.0, 1.0, 1.0], [9.0, 0.8, 5.0, 0.8, 0.8, 0.8], True),
])
def test_faster_decides_on_medians_with_a_margin(plain_s, fast_s, adopted):
    plain, fast, clock = fake_runs(plain_s, fast_s)
    assert faster(plain, fast, repeats=5, clock=clock) is adopted


@pytest.mark.parametrize("verdict", [True, False])
def test_optimize_adopts_exactly_what_measured_faster(monkeypatch, verdict):
    decisions = []

    def fake_faster(plain, fast):
        decisions.append(verdict)
        return verdict

    monkeypatch.setattr(cpu, "faster", fake_faster)
    model = GPTModel(SMALL).eval()
    assert optimize(model) is model
    # The three fused kinds (LayerNorm, GELU, MultiHeadAttention); SMALL's layer groups
    # (64->64 with a bias: query, key, value and out_proj; 64->256; 256->64; the head
    # 64->1000), one row each; and the head's slicing.
    assert len(decisions) == 3 + 5
    fast = [m for m in model.modules() if type(m) is FastLinear]
    fused = [m for m in model.modules() if type(m) in FUSED.values()]
    if verdict:
        assert len(fast) == 13 and model.out_head.sliced and len(fused) == 9
    else:
        assert fast == [] and all(type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear))
        assert fused == []


def test_optimize_decides_per_layer_group(monkeypatch):
    # Only GELU's and the head's one-row measurements win: nothing else may change.
    verdicts = iter([False, True, False] + [False, False, False, True, False])
    monkeypatch.setattr(cpu, "faster", lambda plain, fast: next(verdicts))
    model = optimize(GPTModel(SMALL).eval())
    assert [n for n, m in model.named_modules() if type(m) is FastLinear] == ["out_head"]
    assert model.out_head.one_row and not model.out_head.sliced
    changed = {type(m) for m in model.modules() if type(m) in FUSED.values()}
    assert changed == {FusedGELU}
    assert all(type(m) is LayerNorm for n, m in model.named_modules() if "norm" in n)


def test_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        optimize("gpt2")
    with pytest.raises(ValueError, match="one_row") as err:
        use_path(nn.Linear(2, 2), "fast")  # a str, but no path's name: a wrong value
    assert type(err.value) is ValueError
    for bad in (["one_row"], None, 1):  # not a str: a wrong type
        with pytest.raises(TypeError, match="path must be a str, got"):
            use_path(nn.Linear(2, 2), bad)
    with pytest.raises(TypeError, match="nn.Linear"):
        use_path(nn.Embedding(2, 2), "one_row")


def test_faster_stops_early_when_the_path_is_twice_as_slow():
    plain, fast, clock = fake_runs([1.0] * 6, [1.0, 2.5] + [0.1] * 4)  # later runs would win
    assert faster(plain, fast, repeats=5, clock=clock) is False
