"""The parameter ledger of chapter 8 holds exactly.

Counts come from models built by the package's one meta-device build, `meta_model`
(shapes and dtypes, no storage, no draws), which runs the real constructors, including
weight tying, in well under a second. A closed-form count, derived independently below,
must agree with them, and so must the package's one counter, `count_parameters`, and the
rows of `parameter_ledger`.
"""

import sys
from collections import Counter

import pytest
import torch

from llm_from_scratch.model import (GPT2_PRESETS, GPT_CONFIG_124M, GPTConfig, GPTModel, as_config,
                                    count_parameters, meta_model, parameter_ledger)

MB = 1024**2


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # shared tensors count once


def closed_form(cfg: GPTConfig) -> int:
    """Count by hand: embeddings, L blocks (attention, FFN, two norms), final norm, head."""
    V, T, d, L = cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_layers
    attention = 3 * d * d + (3 * d if cfg.qkv_bias else 0) + d * d + d
    ffn = (d * 4 * d + 4 * d) + (4 * d * d + d)
    norms = 2 * 2 * d
    head = 0 if cfg.tie_weights else V * d
    return V * d + T * d + L * (attention + ffn + norms) + 2 * d + head


@pytest.mark.parametrize(
    "qkv_bias, tie_weights, expected",
    [
        (False, False, 163_009_536),  # the book's GPTModel with GPT_CONFIG_124M
        (False, True, 124_412_160),  # 163,009,536 - 50257 * 768
        (True, False, 163_037_184),
        (True, True, 124_439_808),  # OpenAI's GPT-2 small
    ],
)
def test_the_four_ledger_numbers(qkv_bias, tie_weights, expected):
    cfg = GPTConfig(qkv_bias=qkv_bias, tie_weights=tie_weights)
    assert n_params(meta_model(cfg)) == expected
    assert closed_form(cfg) == expected


def test_tying_removes_exactly_one_vocabulary_matrix():
    untied = n_params(meta_model(GPTConfig()))
    tied_model = meta_model(GPTConfig(tie_weights=True))
    assert tied_model.out_head.weight is tied_model.tok_emb.weight
    assert untied - n_params(tied_model) == 50257 * 768 == 38_597_376


def test_breakdown_by_component_sums_to_the_total():
    cfg = GPTConfig()
    model = meta_model(cfg)
    ledger = Counter()
    for name, p in model.named_parameters():
        parts = name.split(".")
        key = parts[2] if parts[0] == "trf_blocks" else parts[0]  # att, ff, norm1, norm2, ...
        ledger[key] += p.numel()
    d, L = cfg.emb_dim, cfg.n_layers
    assert ledger == {
        "tok_emb": 50257 * 768,
        "pos_emb": 1024 * 768,
        "att": L * 2_360_064,  # per block: W_query, W_key, W_value (768 x 768), out_proj + bias
        "ff": L * 4_722_432,  # per block: 768 -> 3072 -> 768 with biases
        "norm1": L * 2 * d,
        "norm2": L * 2 * d,
        "final_norm": 2 * d,
        "out_head": 50257 * 768,
    }
    assert sum(ledger.values()) == n_params(model) == 163_009_536
    per_block = sum(p.numel() for p in model.trf_blocks[0].parameters())
    assert per_block == 7_085_568 and L * per_block == 85_026_816


def test_memory_in_float32_bfloat16_and_for_adamw_training():
    model = meta_model(GPTConfig())
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert weights == 163_009_536 * 4
    assert f"{weights / MB:.2f}" == "621.83"
    bf16 = sum(p.numel() * p.element_size() for p in model.to(torch.bfloat16).parameters())
    assert bf16 * 2 == weights and f"{bf16 / MB:.2f}" == "310.92"

    model = meta_model(GPTConfig())  # float32 again
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer = torch.optim.AdamW(model.parameters())
    optimizer.step()
    moments = sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for name, t in state.items()
        if name != "step"
    )
    assert {k for state in optimizer.state.values() for k in state} == {"step", "exp_avg", "exp_avg_sq"}
    assert moments == 2 * weights
    training = weights + weights + moments  # weights + gradients + two moments
    assert training == 4 * weights and f"{training / MB:.2f}" == "2487.33"


def test_published_gpt2_sizes():
    """With GPT-2's choices (qkv bias, tied head) the presets have the published sizes
    (the parameter counts of Hugging Face's gpt2, gpt2-medium, gpt2-large and gpt2-xl)."""
    published = {
        "gpt2-small": 124_439_808,
        "gpt2-medium": 354_823_168,
        "gpt2-large": 774_030_080,
        "gpt2-xl": 1_557_611_200,
    }
    assert set(published) == set(GPT2_PRESETS)
    for name, expected in published.items():
        assert closed_form(GPTConfig.from_preset(name)) == expected, name
    for name in ("gpt2-small", "gpt2-medium"):  # the two cheap ones, built for real
        assert n_params(meta_model(GPTConfig.from_preset(name))) == published[name], name


@pytest.mark.parametrize(
    "overrides",
    [dict(vocab_size=97, context_length=12, emb_dim=48, n_heads=4, n_layers=3),
     dict(vocab_size=1000, context_length=64, emb_dim=64, n_heads=8, n_layers=1, qkv_bias=True),
     dict(vocab_size=500, context_length=32, emb_dim=32, n_heads=2, n_layers=2, tie_weights=True)],
)
def test_closed_form_matches_other_configs(overrides):
    cfg = GPTConfig(**overrides)
    assert n_params(meta_model(cfg)) == closed_form(cfg)


# --- one build, one counter ------------------------------------------------------------

CONFIGS = {
    "book's dict": GPT_CONFIG_124M, "untied": GPTConfig(), "tied": GPTConfig(tie_weights=True),
    **{name: GPTConfig.from_preset(name) for name in GPT2_PRESETS},
    "small": GPTConfig(vocab_size=97, context_length=12, emb_dim=48, n_heads=4, n_layers=3),
}


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_the_ledger_rows_add_up_to_count_parameters(cfg):
    ledger = parameter_ledger(meta_model(cfg))
    assert sum(ledger.values()) == count_parameters(cfg) == closed_form(as_config(cfg))
    assert all(n >= 0 for n in ledger.values()) and "token embedding" in ledger


def test_a_tied_head_counts_zero_in_the_ledger():
    ledger = parameter_ledger(meta_model(GPTConfig(tie_weights=True)))
    assert ledger["output head"] == 0 and ledger["token embedding"] == 50257 * 768


def test_meta_model_is_gptmodel_without_storage():
    cfg = GPTConfig(vocab_size=97, context_length=12, emb_dim=48, n_heads=4, n_layers=3,
                    qkv_bias=True, tie_weights=True)
    model = meta_model(cfg)
    assert type(model) is GPTModel and model.cfg == cfg
    assert model.out_head.weight is model.tok_emb.weight
    state = model.state_dict()
    assert all(t.is_meta for t in state.values())
    real = GPTModel(cfg).state_dict()  # the same names, shapes and dtypes as a real build
    assert {k: (t.shape, t.dtype) for k, t in state.items()} == \
        {k: (t.shape, t.dtype) for k, t in real.items()}
    # Outside the build nothing is skipped: the mode is gone once meta_model returns.
    assert torch.equal(torch.triu(torch.ones(2, 2), diagonal=1), torch.tensor([[0., 1.], [0., 0.]]))
    torch.manual_seed(0)
    assert torch.empty(3).normal_().abs().sum() > 0


# In a fresh process: a plain build on the meta device imports torch._dynamo (for the
# embedding's normal draw and the masks' torch.triu), meta_model does not, nor sympy
# (which torch.empty_like imports on the meta device); neither does a GPT-2
# initialisation run inside it, and no random number is drawn.
META_BUILD = (
    "import sys, torch\n"
    "from llm_from_scratch.model import GPTConfig, init_gpt2_weights, meta_model\n"
    "from llm_from_scratch.model import _NoValues\n"
    "state = torch.get_rng_state()\n"
    "model = meta_model(GPTConfig.from_preset('gpt2-xl'))\n"
    "with torch.device('meta'), _NoValues():\n"
    "    init_gpt2_weights(model)\n"
    "assert torch.equal(state, torch.get_rng_state()), 'random numbers were drawn'\n"
    "assert all(p.is_meta for p in model.parameters())\n"
    "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)\n"
    "with torch.device('meta'):\n"
    "    torch.nn.Embedding(3, 2)\n"
    "print('torch._dynamo' in sys.modules)\n"
)


def background_commands(folder):
    """A fresh process for the test below, started when the tests are collected
    (conftest.py), to run in the background while other tests run."""
    return {"meta": [sys.executable, "-c", META_BUILD]}


def test_meta_model_draws_nothing_and_imports_no_dynamo(commands):
    results, _ = commands
    returncode, out, err = results["meta"]
    assert returncode == 0, err
    assert out.split() == ["False", "False", "True"]  # what a plain build costs
