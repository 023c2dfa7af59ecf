"""Which start each documented route gives (chapter 10, "Which start you get").

- the book's configuration (GPT_CONFIG_124M, GPTConfig()) through GPTModel: the book's
  draws, PyTorch's defaults and an untied head;
- GPTModel(GPTConfig.from_preset(...)): the book's draws on GPT-2's shapes, tied;
- gpt2_model(preset or config, **overrides): GPT-2's initialisation, for every preset;
- load_gpt2(path): the checkpoint's weights, nothing drawn.

The presets are measured at their own depth (which sets the residual scale) but a
narrow width and a small vocabulary, so that even GPT-2 XL's 48 blocks build in a
fraction of a second. Chapter 10 builds GPT-2 small at full size through each route
and checks what it prints; here the book's configuration is built once at full size.
"""

import math

import pytest
import torch

from llm_from_scratch.model import (GPT2_PRESETS, GPT_CONFIG_124M, GPTConfig,
                                    GPTModel, LayerNorm, gpt2_model,
                                    init_gpt2_weights)
from llm_from_scratch.pretrained import load_gpt2, save_gpt2

# Small vocabulary and context; each preset keeps its depth and head count, at
# 4 dimensions per head.
NARROW = dict(vocab_size=1000, context_length=128)


def narrow(name):
    return dict(NARROW, emb_dim=4 * GPT2_PRESETS[name]["n_heads"])


def pooled_std(tensors) -> float:
    return torch.cat([t.detach().flatten() for t in tensors]).std().item()


def residual_weights(model):
    return [w for b in model.trf_blocks for w in (b.att.out_proj.weight, b.ff.layers[2].weight)]


def inner_weights(model):
    return [m.weight for b in model.trf_blocks
            for m in (b.att.W_query, b.att.W_key, b.att.W_value, b.ff.layers[0])]


def assert_gpt2_start(model):
    """GPT-2's initialisation: N(0, 0.02) weights, residual projections at
    0.02 / sqrt(2 * n_layers), zero biases, LayerNorm at identity, a tied head."""
    n_layers = model.cfg.n_layers
    assert model.out_head.weight is model.tok_emb.weight
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.pos_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert pooled_std(inner_weights(model)) == pytest.approx(0.02, rel=0.02)
    assert pooled_std(residual_weights(model)) == pytest.approx(0.02 / math.sqrt(2 * n_layers), rel=0.02)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, LayerNorm):
            assert torch.equal(module.scale, torch.ones_like(module.scale))
            assert torch.equal(module.shift, torch.zeros_like(module.shift))


def assert_pytorch_default_start(model):
    """What GPTModel draws, the book's way: nn.Embedding's N(0, 1), nn.Linear's
    uniform on +-1/sqrt(in_features) (standard deviation 1/sqrt(3 in_features))."""
    d = model.cfg.emb_dim
    assert model.tok_emb.weight.std().item() == pytest.approx(1.0, rel=0.02)
    w_query = model.trf_blocks[0].att.W_query.weight
    assert w_query.abs().max().item() <= 1 / math.sqrt(d)
    assert pooled_std(inner_weights(model)) == pytest.approx(1 / math.sqrt(3 * d), rel=0.05)
    out_proj = [b.att.out_proj.weight for b in model.trf_blocks]
    assert pooled_std(out_proj) == pytest.approx(1 / math.sqrt(3 * d), rel=0.05)


# --- gpt2_model: every preset starts GPT-2-initialised --------------------------


@pytest.mark.parametrize("name", list(GPT2_PRESETS))
def test_gpt2_model_of_each_preset_starts_gpt2_initialised(name):
    torch.manual_seed(123)
    model = gpt2_model(name, **narrow(name))
    assert model.cfg == GPTConfig.from_preset(name, **narrow(name))
    assert model.cfg.n_layers == GPT2_PRESETS[name]["n_layers"]  # the preset's depth
    assert_gpt2_start(model)


def test_gpt2_model_is_init_gpt2_weights_of_gptmodel():
    # The documented equivalence, value for value under one seed, for a name, a
    # GPTConfig and a book-style dict, with and without overrides.
    cfg = GPTConfig.from_preset("gpt2-medium", **narrow("gpt2-medium"), n_layers=2)
    routes = [lambda: gpt2_model("gpt2-medium", **narrow("gpt2-medium"), n_layers=2),
              lambda: gpt2_model(cfg),
              lambda: gpt2_model(cfg.to_dict()),
              lambda: gpt2_model(GPTConfig.from_preset("gpt2-medium"), **narrow("gpt2-medium"),
                                 n_layers=2)]
    torch.manual_seed(123)
    expected = init_gpt2_weights(GPTModel(cfg)).state_dict()
    for build in routes:
        torch.manual_seed(123)
        model = build()
        assert model.cfg == cfg
        got = model.state_dict()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_gpt2_model_keeps_an_untied_configuration_untied():
    # The recipe applies to any configuration; only the presets are tied.
    torch.manual_seed(123)
    model = gpt2_model({**GPT_CONFIG_124M, **NARROW, "emb_dim": 96, "n_layers": 2})
    assert model.out_head.weight is not model.tok_emb.weight
    assert model.out_head.weight.std().item() == pytest.approx(0.02, rel=0.03)
    assert pooled_std(residual_weights(model)) == pytest.approx(0.01, rel=0.03)


def test_gpt2_model_refuses_what_is_no_preset_or_configuration():
    with pytest.raises(ValueError, match="unknown preset 'gpt3'"):
        gpt2_model("gpt3")
    with pytest.raises(TypeError):
        gpt2_model(42)


# --- GPTModel keeps the book's draws ---------------------------------------------


@pytest.mark.parametrize("name", ["gpt2-small", "gpt2-medium"])
def test_gptmodel_of_a_preset_keeps_the_books_draws_tied(name):
    # The book's class does not initialise: on a preset's shapes it holds PyTorch's
    # defaults, the head tied to an N(0, 1) embedding (chapter 10's "PyTorch default,
    # tied" row).
    torch.manual_seed(123)
    model = GPTModel(GPTConfig.from_preset(name, **narrow(name)))
    assert model.out_head.weight is model.tok_emb.weight
    assert_pytorch_default_start(model)
    with pytest.raises(AssertionError):
        assert_gpt2_start(model)


def test_the_books_dict_and_gptconfig_draw_the_same_book_weights():
    # GPT_CONFIG_124M and GPTConfig() are the same model; on small shapes, the same
    # seed gives the same values, PyTorch's defaults, untied.
    small = {**GPT_CONFIG_124M, **NARROW, "emb_dim": 64, "n_heads": 4, "n_layers": 2}
    torch.manual_seed(123)
    from_dict = GPTModel(small)
    torch.manual_seed(123)
    from_config = GPTModel(GPTConfig(**small))
    a, b = from_dict.state_dict(), from_config.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert from_dict.out_head.weight is not from_dict.tok_emb.weight
    assert_pytorch_default_start(from_dict)


def test_gpt_config_124m_still_gives_the_books_first_logits():
    # The book's steps at full size: seed 123, GPTModel(GPTConfig()), one forward pass in
    # training mode on "Every effort moves you". The first three logits of its first
    # position, as the book prints them (tests/test_book_outputs.py checks the rest, the
    # dict route, and the book's generated ids).
    torch.manual_seed(123)
    model = GPTModel(GPTConfig())
    with torch.no_grad():
        out = model(torch.tensor([[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]]))
    expected = torch.tensor([0.3613, 0.4222, -0.0711])
    assert torch.allclose(out[0, 0, :3], expected, atol=6e-5)


# --- load_gpt2: the checkpoint's weights ------------------------------------------


@pytest.mark.parametrize("start", ["gpt2", "pytorch"])
def test_load_gpt2_keeps_the_checkpoints_weights(tmp_path, start):
    # Loading draws nothing: whatever the checkpoint holds comes back, value for value,
    # even weights that are not GPT-2's initialisation.
    cfg = GPTConfig.from_preset("gpt2-small", **narrow("gpt2-small"), n_layers=2)
    torch.manual_seed(123)
    saved = gpt2_model(cfg) if start == "gpt2" else GPTModel(cfg)
    save_gpt2(saved, tmp_path)
    torch.manual_seed(7)  # a different random state: a draw would show
    loaded = load_gpt2(tmp_path)
    assert loaded.cfg == cfg
    assert loaded.out_head.weight is loaded.tok_emb.weight
    want = saved.state_dict()
    got = loaded.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    if start == "gpt2":
        assert_gpt2_start(loaded)
    else:
        assert_pytorch_default_start(loaded)
