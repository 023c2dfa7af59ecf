"""The speed-ups that change how the model computes, not what: a single row on all threads
and the sliced vocabulary head (chapter 8), and construction that draws every number once
(chapter 10)."""

import dataclasses
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from llm_from_scratch.generate import generate
from llm_from_scratch.model import GPTConfig, GPTModel, Linear, OutputHead

SMALL = GPTConfig(vocab_size=1000, context_length=32, emb_dim=64, n_heads=4, n_layers=2, qkv_bias=True)


@pytest.mark.parametrize("shape", [(1, 1, 64), (3, 1, 64), (2, 5, 64), (7, 64), (1, 300, 64)])
@pytest.mark.parametrize("vocab", [1000, 1024, 1025, 511])  # whole, partial and single slices
def test_sliced_head_equals_one_product(shape, vocab):
    torch.manual_seed(0)
    head = OutputHead(64, vocab)
    x = torch.randn(shape)
    with torch.no_grad():
        sliced = head.forward_sliced(x)
        assert sliced.shape == (*shape[:-1], vocab)
        torch.testing.assert_close(sliced, F.linear(x, head.weight), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(head(x), F.linear(x, head.weight), rtol=1e-5, atol=1e-5)


def test_sliced_head_keeps_low_precision_dtypes():
    head = OutputHead(64, 1000).to(torch.bfloat16)
    x = torch.randn(2, 8, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        out = head(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, F.linear(x, head.weight))


def test_head_gradients_are_those_of_a_linear_layer():
    torch.manual_seed(0)
    head = OutputHead(64, 1000)
    plain = torch.nn.Linear(64, 1000, bias=False)
    plain.weight = torch.nn.Parameter(head.weight.detach().clone())
    x = torch.randn(2, 6, 64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    head(x).square().sum().backward()
    plain(x2).square().sum().backward()
    torch.testing.assert_close(head.weight.grad, plain.weight.grad)
    torch.testing.assert_close(x.grad, x2.grad)


def test_head_is_a_linear_layer_with_the_books_state_dict():
    model = GPTModel(SMALL)
    assert isinstance(model.out_head, torch.nn.Linear)
    assert "out_head.weight" in model.state_dict()
    assert model.out_head.bias is None


def test_every_parameter_is_drawn_or_set():
    """materialize hands out uninitialised memory: init must overwrite every value."""
    torch.manual_seed(0)
    model = GPTModel(SMALL)  # untied: every matrix its own draw
    for name, param in model.named_parameters():
        assert torch.isfinite(param).all(), name
        if name.endswith(("bias", "shift")):
            assert (param == 0).all(), name
        elif name.endswith("scale"):
            assert (param == 1).all(), name
        else:
            assert 0.001 < param.std().item() < 0.03, name
        assert param.requires_grad, name


def test_construction_keeps_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = GPTModel(SMALL)
    finally:
        torch.set_default_dtype(previous)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]]))).all()


def test_tied_model_shares_one_drawn_tensor():
    model = GPTModel(dataclasses.replace(SMALL, tie_weights=True))
    assert model.out_head.weight is model.tok_emb.weight
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.002


def test_a_thread_error_reaches_the_caller():
    from llm_from_scratch.model import draw_normal

    with pytest.raises(RuntimeError):
        draw_normal([(torch.empty(3, dtype=torch.int64), 0.02)])  # normal_ needs floats


def test_construction_avoids_the_slow_meta_import():
    """Drawing an nn.Embedding on the meta device, or Module.to_empty, imports sympy and
    PyTorch's symbolic shapes the first time: over a second here. GPTModel avoids both."""
    code = (
        "import sys\n"
        "from llm_from_scratch.model import GPTConfig, GPTModel\n"
        "GPTModel(GPTConfig(vocab_size=100, context_length=8, emb_dim=16, n_heads=2, n_layers=1))\n"
        "print('sympy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("out_features", [1001, 96, 3, 1])  # remainders, even, fewer rows than threads
@pytest.mark.parametrize("bias", [True, False])  # the vocabulary head (OutputHead) has none
@pytest.mark.parametrize("shape", [(1, 1, 64), (1, 64), (64,)])
def test_one_row_equals_one_product_for_any_thread_count(threads, out_features, bias, shape):
    torch.manual_seed(0)
    layer = Linear(64, out_features, bias=bias)
    x = torch.randn(shape)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            out = layer.forward_one_row(x)
    finally:
        torch.set_num_threads(previous)
    assert out.shape == (*shape[:-1], out_features)
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)


def test_one_row_layer_keeps_low_precision_dtypes():
    layer = Linear(64, 96).to(torch.bfloat16)
    x = torch.randn(1, 1, 64, dtype=torch.bfloat16)
    with torch.no_grad():
        out = layer.forward_one_row(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))


def test_one_row_under_autocast_matches_the_plain_product():
    layer = Linear(1024, 768)  # large enough for the one-row path
    x = torch.randn(1, 1, 1024)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, plain = layer(x), F.linear(x, layer.weight, layer.bias)
    assert out.dtype == plain.dtype == torch.bfloat16
    torch.testing.assert_close(out, plain)


@pytest.mark.parametrize("size, split", [((1024, 512), True), ((64, 96), False)])
def test_only_large_weights_take_the_one_row_path(monkeypatch, size, split):
    layer, calls = Linear(*size), []
    monkeypatch.setattr(Linear, "forward_one_row", lambda self, x: calls.append(x) or F.linear(x, self.weight, self.bias))
    with torch.no_grad():
        layer(torch.randn(1, 1, size[0]))  # one row
        layer(torch.randn(1, 2, size[0]))  # two rows: never
    assert len(calls) == (1 if split else 0)


def test_one_row_with_autograd_takes_the_plain_product():
    torch.manual_seed(0)
    layer = Linear(1024, 512)  # large enough for the one-row path, were it not for autograd
    plain = torch.nn.Linear(1024, 512)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(1, 1, 1024)
    layer(x).sum().backward()
    plain(x).sum().backward()
    torch.testing.assert_close(layer.weight.grad, plain.weight.grad)
    torch.testing.assert_close(layer.bias.grad, plain.bias.grad)


def test_cached_decoding_puts_every_layer_on_the_one_row_path(monkeypatch):
    """The point of Linear: after the prefill, each step's products are single rows."""
    model = GPTModel(SMALL).eval()
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(isinstance(m, Linear) for m in layers)  # no plain nn.Linear left behind
    calls = []
    one_row = Linear.forward_one_row
    monkeypatch.setattr(Linear, "ONE_ROW_MIN_WEIGHTS", 0)  # SMALL's weights are all tiny
    monkeypatch.setattr(Linear, "forward_one_row", lambda self, x: calls.append(self) or one_row(self, x))
    generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=3)
    # Steps 2 and 3 run one row through every layer; the prefill's three rows go through
    # the blocks as a matrix, and only its last row (last_only) reaches the head.
    assert len(calls) == 2 * len(layers) + 1
    assert set(map(id, calls)) == set(map(id, layers))
