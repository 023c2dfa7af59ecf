"""Our model against GPT-2's published architecture (chapters 1, 8 and 10): weight tying, GPT-2's
initialisation (opt-in, `init_gpt2_weights`), and the four presets: their parameter counts
and their tensors, against an independent formula and against transformers' GPT-2."""

import math

import pytest
import torch
import torch.nn.functional as F

from llm_from_scratch.model import (GPT2_PRESETS, GPTConfig, GPTModel, count_parameters,
                                    init_gpt2_weights, meta_model)

SMALL = dict(vocab_size=100, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def gpt2_parameter_count(V: int, C: int, d: int, L: int, *, tied: bool, qkv_bias: bool = True) -> int:
    """Parameters of GPT-2 from its published architecture, written independently of model.py.

    Per block: attention has query, key, value and output projections (d x d each, biases
    on the output and, with qkv_bias, on q, k, v); the MLP is d -> 4d -> d with biases;
    two LayerNorms have a scale and a shift each.
    """
    attention = 4 * d * d + d + (3 * d if qkv_bias else 0)
    mlp = (d * 4 * d + 4 * d) + (4 * d * d + d)
    norms = 2 * (2 * d)
    total = V * d + C * d + L * (attention + mlp + norms) + 2 * d
    return total if tied else total + V * d


def unique_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


# --- weight tying ------------------------------------------------------------


def test_tied_head_is_the_embedding_tensor():
    model = meta_model(GPTConfig(tie_weights=True))
    assert model.out_head.weight is model.tok_emb.weight
    assert unique_parameters(model) == 124_412_160
    assert unique_parameters(meta_model(GPTConfig(tie_weights=False))) == 163_009_536


def test_untied_head_is_a_separate_tensor():
    model = GPTModel(GPTConfig(**SMALL, tie_weights=False))
    assert model.out_head.weight is not model.tok_emb.weight
    assert model.out_head.weight.data_ptr() != model.tok_emb.weight.data_ptr()


def test_tied_weights_share_memory_and_get_one_gradient():
    torch.manual_seed(123)
    cfg = GPTConfig(**SMALL, tie_weights=True)
    tied = GPTModel(cfg)
    assert tied.out_head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    untied = GPTModel(GPTConfig(**{**cfg.to_dict(), "tie_weights": False}))
    untied.load_state_dict(tied.state_dict())
    assert torch.equal(untied.out_head.weight, untied.tok_emb.weight)

    ids = torch.randint(0, cfg.vocab_size, (3, 10))
    for model in (tied, untied):
        logits = model(ids[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()

    grads = [p.grad for p in tied.parameters()]
    assert all(g is not None for g in grads)
    assert len(grads) == len(list(untied.parameters())) - 1  # one tensor fewer
    assert tied.out_head.weight.grad is tied.tok_emb.weight.grad
    both_roles = untied.tok_emb.weight.grad + untied.out_head.weight.grad
    torch.testing.assert_close(tied.tok_emb.weight.grad, both_roles, atol=1e-7, rtol=1e-5)


def test_an_optimizer_step_keeps_the_tie():
    torch.manual_seed(123)
    model = GPTModel(GPTConfig(**SMALL, tie_weights=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, 100, (2, 8))
    model(ids).sum().backward()
    optimizer.step()
    assert model.out_head.weight is model.tok_emb.weight


# --- GPT-2's initialisation ----------------------------------------------------


@pytest.mark.parametrize("n_layers", [12, 4])
def test_init_standard_deviations(n_layers):
    torch.manual_seed(123)
    cfg = GPTConfig(vocab_size=2000, context_length=256, emb_dim=256, n_heads=4,
                    n_layers=n_layers, qkv_bias=True, tie_weights=True)
    model = GPTModel(cfg)
    assert init_gpt2_weights(model) is model  # in place, and returned for chaining
    assert model.out_head.weight is model.tok_emb.weight  # still tied

    def std(tensors):
        return torch.cat([t.detach().flatten() for t in tensors]).std().item()

    blocks = model.trf_blocks
    residual = [w for b in blocks for w in (b.att.out_proj.weight, b.ff.layers[2].weight)]
    ordinary = [m.weight for b in blocks for m in (b.att.W_query, b.att.W_key, b.att.W_value, b.ff.layers[0])]
    assert std(ordinary) == pytest.approx(0.02, rel=0.02)
    assert std(residual) == pytest.approx(0.02 / math.sqrt(2 * n_layers), rel=0.02)
    assert std([model.tok_emb.weight]) == pytest.approx(0.02, rel=0.02)
    assert std([model.pos_emb.weight]) == pytest.approx(0.02, rel=0.03)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
    for norm in [model.final_norm, *(n for b in blocks for n in (b.norm1, b.norm2))]:
        assert torch.equal(norm.scale, torch.ones_like(norm.scale))
        assert torch.equal(norm.shift, torch.zeros_like(norm.shift))


def test_gpt_model_keeps_pytorch_defaults_unless_asked():
    # GPTModel draws what nn.Embedding / nn.Linear draw (the book's numbers); GPT-2's
    # initialisation is a separate step.
    torch.manual_seed(123)
    model = GPTModel(GPTConfig(vocab_size=2000, context_length=64, emb_dim=256, n_heads=4,
                               n_layers=2, qkv_bias=True, tie_weights=True))
    assert model.tok_emb.weight.std().item() == pytest.approx(1.0, rel=0.02)  # N(0, 1)
    bound = 1 / math.sqrt(256)  # nn.Linear: uniform on +-1/sqrt(in_features)
    w_query = model.trf_blocks[0].att.W_query
    assert w_query.weight.abs().max() <= bound
    assert w_query.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert torch.count_nonzero(w_query.bias) > 0
    init_gpt2_weights(model)
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.02)


def test_init_matches_transformers_gpt2():
    # transformers' GPT2LMHeadModel initialises itself with GPT-2's recipe; the standard
    # deviations of every tensor, by role, must agree with ours.
    transformers = pytest.importorskip("transformers")
    L = 4
    torch.manual_seed(123)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=1000, n_positions=256, n_embd=256, n_layer=L, n_head=4,
        bos_token_id=None, eos_token_id=None))
    ours = init_gpt2_weights(GPTModel(GPTConfig(vocab_size=1000, context_length=256, emb_dim=256,
                                                n_heads=4, n_layers=L, qkv_bias=True, tie_weights=True)))

    def std(tensors):
        return torch.cat([t.detach().flatten() for t in tensors]).std().item()

    blocks, h = ours.trf_blocks, hf.transformer.h
    pairs = {
        "wte": ([ours.tok_emb.weight], [hf.transformer.wte.weight]),
        "wpe": ([ours.pos_emb.weight], [hf.transformer.wpe.weight]),
        "c_attn, c_fc": ([m.weight for b in blocks for m in (b.att.W_query, b.att.W_key, b.att.W_value,
                                                             b.ff.layers[0])],
                         [w for b in h for w in (b.attn.c_attn.weight, b.mlp.c_fc.weight)]),
        "c_proj (residual)": ([w for b in blocks for w in (b.att.out_proj.weight, b.ff.layers[2].weight)],
                              [w for b in h for w in (b.attn.c_proj.weight, b.mlp.c_proj.weight)]),
    }
    for role, (mine, theirs) in pairs.items():
        assert std(mine) == pytest.approx(std(theirs), rel=0.03), role
    assert std(pairs["c_proj (residual)"][0]) == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.03)
    hf_biases = [p for n, p in hf.named_parameters() if n.endswith(".bias") and ".ln_" not in n]
    assert all(torch.count_nonzero(b) == 0 for b in hf_biases)


def test_init_gpt2_weights_reinitialises_a_disturbed_model():
    torch.manual_seed(123)
    model = GPTModel(GPTConfig(**SMALL, qkv_bias=True))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    init_gpt2_weights(model)
    assert torch.equal(model.final_norm.scale, torch.ones(32))
    assert torch.count_nonzero(model.trf_blocks[0].att.W_query.bias) == 0
    assert model.tok_emb.weight.abs().max() < 0.2


def test_init_is_reproducible_with_the_seed():
    cfg = GPTConfig(**SMALL)
    torch.manual_seed(123)
    a = GPTModel(cfg).state_dict()
    torch.manual_seed(123)
    b = GPTModel(cfg).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_initial_loss_is_close_to_uniform():
    torch.manual_seed(123)
    cfg = GPTConfig(emb_dim=64, n_heads=4, n_layers=4, context_length=32, drop_rate=0.0,
                    qkv_bias=True, tie_weights=True)
    model = init_gpt2_weights(GPTModel(cfg)).eval()
    ids = torch.randint(0, cfg.vocab_size, (4, cfg.context_length + 1))
    with torch.no_grad():
        logits = model(ids[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).item()
    assert abs(loss - math.log(cfg.vocab_size)) < 0.3


def test_init_gpt2_weights_on_the_meta_device_draws_nothing():
    model = meta_model(GPTConfig.from_preset("gpt2-medium"))
    assert all(p.is_meta for p in model.parameters())
    assert init_gpt2_weights(model) is model  # nothing to draw, and no error
    assert all(p.is_meta for p in model.parameters())


# --- presets -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GPT2_PRESETS))
@pytest.mark.parametrize("tied", [True, False])
def test_preset_counts_match_the_published_architecture(name, tied):
    cfg = GPTConfig.from_preset(name, tie_weights=tied)
    assert cfg.qkv_bias and cfg.vocab_size == 50257 and cfg.context_length == 1024
    expected = gpt2_parameter_count(cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_layers, tied=tied)
    assert unique_parameters(meta_model(cfg)) == expected == count_parameters(cfg)


def test_published_sizes():
    counts = {name: unique_parameters(meta_model(GPTConfig.from_preset(name))) for name in GPT2_PRESETS}
    assert counts == {
        "gpt2-small": 124_439_808,
        "gpt2-medium": 354_823_168,
        "gpt2-large": 774_030_080,
        "gpt2-xl": 1_557_611_200,
    }
    widths = {name: (cfg["emb_dim"], cfg["n_layers"], cfg["n_heads"]) for name, cfg in GPT2_PRESETS.items()}
    assert widths == {"gpt2-small": (768, 12, 12), "gpt2-medium": (1024, 24, 16),
                      "gpt2-large": (1280, 36, 20), "gpt2-xl": (1600, 48, 25)}


def test_independent_formula_matches_a_small_model_without_qkv_bias():
    cfg = GPTConfig(**SMALL, qkv_bias=False, tie_weights=False)
    assert unique_parameters(GPTModel(cfg)) == gpt2_parameter_count(100, 16, 32, 2, tied=False, qkv_bias=False)


def test_presets_are_transformers_gpt2_architectures():
    # Each preset, as transformers builds GPT-2 of that size (on the meta device: shapes
    # only): the same tensors, in the checkpoint layout, and a config that reads back as
    # the preset.
    transformers = pytest.importorskip("transformers")
    from llm_from_scratch.pretrained import config_from_hf, gpt2_checkpoint_shapes

    for name in GPT2_PRESETS:
        cfg = GPTConfig.from_preset(name)
        hf_config = transformers.GPT2Config(n_embd=cfg.emb_dim, n_layer=cfg.n_layers, n_head=cfg.n_heads)
        with torch.device("meta"):
            hf = transformers.GPT2LMHeadModel(hf_config)
        shapes = {k.removeprefix("transformer."): tuple(v.shape) for k, v in hf.state_dict().items()}
        assert shapes == gpt2_checkpoint_shapes(cfg), name
        fields, eps = config_from_hf(hf_config.to_dict())
        assert GPTConfig(**fields) == cfg and eps == 1e-5, name
        assert unique_parameters(hf) == unique_parameters(meta_model(cfg)), name
