"""Bad input gets a clear error: the right type and the words a learner can act on.

Every rule of GPTConfig, every contract of GPTModel.forward (check_token_ids), every
setting of generate and generate_text_simple and every input of the tokenizer helpers has a
case here asserting the exception type and the key words of its message, so that no bad
input surfaces as a bare PyTorch shape or index error. Boundary cases that must be
*accepted* sit beside them, so a rule that grew too strict fails too. (test_misuse.py
drives random misuse through the same functions.)
"""

import copy
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from llm_from_scratch.generate import generate, generate_text_simple, next_token_probabilities
from llm_from_scratch.kv_cache import KVCache, forward_with_cache
from llm_from_scratch.model import GPTConfig, GPTModel, MultiHeadAttention, as_config
from llm_from_scratch.tokenizer import get_tokenizer, text_to_token_ids, token_ids_to_text

VOCAB, CONTEXT = 97, 8


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(123)
    cfg = GPTConfig(vocab_size=VOCAB, context_length=CONTEXT, emb_dim=32, n_heads=4, n_layers=2)
    return GPTModel(cfg).eval()


# --- GPTConfig -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, error, words",
    [
        # types: int fields
        ({"n_layers": 12.0}, TypeError, ["GPTConfig.n_layers", "must be int", "12.0", "float"]),
        ({"n_layers": True}, TypeError, ["GPTConfig.n_layers", "must be int", "True", "bool"]),
        ({"emb_dim": "768"}, TypeError, ["GPTConfig.emb_dim", "must be int", "'768'", "str"]),
        ({"vocab_size": None}, TypeError, ["GPTConfig.vocab_size", "must be int", "NoneType"]),
        # types: bool and float fields
        ({"qkv_bias": 1}, TypeError, ["GPTConfig.qkv_bias", "must be bool", "int"]),
        ({"tie_weights": "yes"}, TypeError, ["GPTConfig.tie_weights", "must be bool", "str"]),
        ({"drop_rate": "0.1"}, TypeError, ["GPTConfig.drop_rate", "must be float", "str"]),
        ({"drop_rate": False}, TypeError, ["GPTConfig.drop_rate", "must be float", "bool"]),
        # non-positive sizes, each field
        ({"vocab_size": 0}, ValueError, ["GPTConfig.vocab_size", "must be positive", "got 0"]),
        ({"context_length": -1}, ValueError, ["GPTConfig.context_length", "must be positive", "got -1"]),
        ({"emb_dim": 0}, ValueError, ["GPTConfig.emb_dim", "must be positive"]),
        ({"n_heads": 0}, ValueError, ["GPTConfig.n_heads", "must be positive"]),  # not a ZeroDivisionError
        ({"n_layers": -3}, ValueError, ["GPTConfig.n_layers", "must be positive", "-3"]),
        # emb_dim must split evenly over the heads
        ({"emb_dim": 770, "n_heads": 12}, ValueError, ["emb_dim (770)", "divisible by n_heads (12)", "same width"]),
        ({"emb_dim": 64, "n_heads": 5}, ValueError, ["emb_dim (64)", "divisible by n_heads (5)"]),
        # dropout is a probability below 1
        ({"drop_rate": 1.0}, ValueError, ["GPTConfig.drop_rate", "[0, 1)", "1.0"]),
        ({"drop_rate": -0.1}, ValueError, ["GPTConfig.drop_rate", "[0, 1)", "-0.1"]),
        ({"drop_rate": float("nan")}, ValueError, ["GPTConfig.drop_rate", "[0, 1)", "nan"]),
    ],
)
def test_each_config_rule_raises_naming_the_field(fields, error, words):
    """A wrong type is a TypeError (a float or a bool for an int, an int for a bool), a
    wrong value a ValueError."""
    with pytest.raises(Exception) as err:
        GPTConfig(**fields)
    assert type(err.value) is error, f"{type(err.value).__name__}: {err.value}"
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize(
    "fields",
    [{"drop_rate": 0}, {"drop_rate": 0.999}, {"emb_dim": 780, "n_heads": 12}, {"n_heads": 1, "emb_dim": 1},
     {"vocab_size": 1, "context_length": 1, "n_layers": 1}],
)
def test_boundary_configs_are_accepted(fields):
    cfg = GPTConfig(**fields)
    for name, value in fields.items():
        assert getattr(cfg, name) == value


@pytest.mark.parametrize(
    "key, suggestion",
    [("n_layer", "n_layers"), ("emb_dims", "emb_dim"), ("context_len", "context_length"),
     ("drop_out", "drop_rate"), ("vocab", "vocab_size"), ("qkv_biases", "qkv_bias")],
)
def test_unknown_dict_key_suggests_the_closest_field(key, suggestion):
    book = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
            "drop_rate": 0.1, "qkv_bias": False}
    book.pop(suggestion, None)
    book[key] = 1
    for build in (GPTConfig.from_dict, as_config, GPTModel):
        with pytest.raises(ValueError) as err:
            build(book)
        assert f"unknown GPT config key {key!r}" in str(err.value)
        assert f"did you mean {suggestion!r}?" in str(err.value)


def test_unknown_key_with_no_close_match_lists_the_known_keys():
    with pytest.raises(ValueError, match="unknown GPT config key 'zzz'; known keys: vocab_size, context_length"):
        GPTConfig.from_dict({"zzz": 1})


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="unknown preset 'gpt3'; choose one of gpt2-small, gpt2-medium"):
        GPTConfig.from_preset("gpt3")


def test_something_else_than_a_config_is_a_type_error():
    for bad in (42, "gpt2-small", [("emb_dim", 768)]):
        with pytest.raises(TypeError, match="cfg must be a GPTConfig or a dict of its fields, got"):
            GPTModel(bad)
    with pytest.raises(TypeError, match="config must be a dict of GPTConfig fields, got list"):
        GPTConfig.from_dict([("emb_dim", 768)])
    for bad in (None, 2, ["gpt2-small"]):
        with pytest.raises(TypeError, match="the preset name must be a str, got"):
            GPTConfig.from_preset(bad)


def test_a_config_broken_after_it_was_built_is_caught_by_the_model():
    cfg = GPTConfig(vocab_size=VOCAB, context_length=CONTEXT, emb_dim=32, n_heads=4, n_layers=1)
    cfg.n_heads = 5  # a dataclass allows this; the model must not
    with pytest.raises(ValueError, match=r"emb_dim \(32\) must be divisible by n_heads \(5\)"):
        GPTModel(cfg)


def test_a_subclass_written_without_string_annotations_is_checked_too():
    @dataclass
    class WithExtraRate(GPTConfig):  # this module has no `from __future__ import annotations`
        extra_rate: float = 0.1
        name: str = "mine"  # a type GPTConfig does not know: the subclass's business

    assert WithExtraRate(extra_rate=0).extra_rate == 0
    with pytest.raises(TypeError, match=r"GPTConfig.extra_rate must be float, got 'x' \(str\)"):
        WithExtraRate(extra_rate="x")


def test_book_style_lookup_of_a_missing_field_is_a_key_error():
    with pytest.raises(KeyError, match="emb_dims"):
        GPTConfig()["emb_dims"]


def test_attention_built_by_hand_checks_its_head_split():
    with pytest.raises(ValueError, match=r"d_out \(10\) must be divisible by num_heads \(3\)"):
        MultiHeadAttention(d_in=10, d_out=10, context_length=8, dropout=0.0, num_heads=3)


@pytest.mark.parametrize(
    "d_out, num_heads, error, message",
    [
        (12, 0, ValueError, "num_heads must be >= 1, got 0"),  # not a ZeroDivisionError
        (0, 2, ValueError, "d_out must be >= 1, got 0"),
        (-8, 2, ValueError, "d_out must be >= 1, got -8"),
        (12, 2.0, TypeError, "num_heads must be an int, got 2.0"),
        (12, True, TypeError, "num_heads must be an int, got True"),
        (12.0, 2, TypeError, "d_out must be an int, got 12.0"),
        ("12", 2, TypeError, "d_out must be an int, got '12'"),
    ],
)
def test_attention_built_by_hand_checks_its_sizes(d_out, num_heads, error, message):
    with pytest.raises(Exception) as err:
        MultiHeadAttention(d_in=12, d_out=d_out, context_length=8, dropout=0.0, num_heads=num_heads)
    assert type(err.value) is error and str(err.value) == message, f"{type(err.value).__name__}: {err.value}"


# --- GPTModel inputs -------------------------------------------------------------


@pytest.mark.parametrize(
    "make_ids, error, words",
    [
        (lambda: [[1, 2, 3]], TypeError, ["must be a torch.Tensor", "got list"]),
        (lambda: (1, 2, 3), TypeError, ["must be a torch.Tensor", "got tuple"]),
        (lambda: torch.zeros(1, 4), TypeError, ["torch.long (int64) or torch.int32", "torch.float32"]),
        (lambda: torch.tensor([[1.0, 2.0]], dtype=torch.float64), TypeError, ["torch.float64"]),
        (lambda: torch.tensor([[True, False]]), TypeError, ["torch.bool"]),
        (lambda: torch.tensor([[1, 2]], dtype=torch.int16), TypeError, ["torch.int16"]),
        (lambda: torch.tensor([1, 2, 3]), ValueError, ["shape (batch, tokens)", "got (3,)", "unsqueeze(0)"]),
        (lambda: torch.ones(1, 2, 3, dtype=torch.long), ValueError, ["shape (batch, tokens)", "got (1, 2, 3)"]),
        (lambda: torch.tensor(5), ValueError, ["shape (batch, tokens)", "got ()"]),
        (lambda: torch.zeros(2, 0, dtype=torch.long), ValueError, ["at least one token", "(2, 0)"]),
        (lambda: torch.ones(1, CONTEXT + 1, dtype=torch.long), ValueError,
         [f"sequence of {CONTEXT + 1} tokens", f"longer than context_length {CONTEXT}",
          f"keep the last {CONTEXT} tokens"]),
        (lambda: torch.tensor([[1, VOCAB]]), ValueError, [f"[0, {VOCAB}) (vocab_size)", f"from 1 to {VOCAB}"]),
        (lambda: torch.tensor([[1, 50256]]), ValueError, [f"[0, {VOCAB})", "50256"]),
        (lambda: torch.tensor([[3, -1]]), ValueError, [f"[0, {VOCAB})", "from -1 to 3"]),
        (lambda: torch.tensor([[3, 4], [-5, 200]]), ValueError, ["from -5 to 200"]),
    ],
)
def test_bad_token_ids_are_named_before_torch_sees_them(model, make_ids, error, words):
    with pytest.raises(Exception) as err:
        model(make_ids())
    assert type(err.value) is error, f"{type(err.value).__name__}: {err.value}"  # not IndexError/RuntimeError
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_too_long_after_cached_tokens_names_the_cache(model):
    cache = KVCache(model.cfg.n_layers)
    with torch.no_grad():
        forward_with_cache(model, torch.ones(1, 6, dtype=torch.long), cache)
        with pytest.raises(ValueError) as err:
            forward_with_cache(model, torch.ones(1, 3, dtype=torch.long), cache)
        assert "sequence of 3 tokens after 6 cached tokens is longer than context_length 8" in str(err.value)
        # Exactly filling the window is allowed.
        ids = torch.ones(1, 2, dtype=torch.long)
        assert forward_with_cache(model, ids, cache).shape == (1, 2, VOCAB)


def test_valid_boundary_inputs_are_accepted(model):
    with torch.no_grad():
        full = torch.tensor([[0] * (CONTEXT - 1) + [VOCAB - 1]])  # smallest and largest id, full window
        assert model(full).shape == (1, CONTEXT, VOCAB)
        assert model(full.to(torch.int32)).shape == (1, CONTEXT, VOCAB)


# --- generate ----------------------------------------------------------------------


class Spy:
    """A copy of a GPTModel that records the shape of the ids of every forward pass, with
    or without the KV cache (a pre-hook on the token embedding, which both call once per
    pass; `spy.model` is still a GPTModel, so use_cache applies to it)."""

    def __init__(self, model):
        self.model, self.shapes = copy.deepcopy(model), []
        self.model.tok_emb.register_forward_pre_hook(
            lambda _, args: self.shapes.append(tuple(args[0].shape)))


def test_max_new_tokens_zero_returns_the_input(model):
    prompt = torch.tensor([[5, 6, 7], [8, 9, 10]])
    spy = Spy(model)
    for use_cache in (True, False):
        out = generate(spy.model, prompt, 0, use_cache=use_cache)
        assert torch.equal(out, prompt)
    assert spy.shapes == []  # nothing to generate: the model is never run


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("extra", [0, 5])
def test_prompts_at_and_over_the_context_length_work_and_are_cropped(model, use_cache, extra):
    generator = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, VOCAB, (2, CONTEXT + extra), generator=generator)
    spy = Spy(model)
    out = generate(spy.model, prompt, 4, use_cache=use_cache)
    assert out.shape == (2, CONTEXT + extra + 4)
    assert torch.equal(out[:, : CONTEXT + extra], prompt)  # the whole prompt is kept
    assert max(shape[1] for shape in spy.shapes) <= CONTEXT  # the model never sees more
    # Cropping keeps the *last* CONTEXT tokens: the continuation is that of the cropped prompt.
    cropped = generate(model, prompt[:, -CONTEXT:], 4, use_cache=use_cache)
    assert torch.equal(out[:, -4:], cropped[:, -4:])


EOS = 50


class Scripted:
    """A stand-in model: at step s, row r scores token script[r][s] highest."""

    def __init__(self, script):
        self.script = torch.tensor(script)
        self.cfg = SimpleNamespace(vocab_size=64, context_length=32, n_layers=1)
        self.steps = 0

    def __call__(self, idx, **kwargs):
        logits = torch.zeros(idx.shape[0], idx.shape[1], self.cfg.vocab_size)
        logits[torch.arange(idx.shape[0]), -1, self.script[:, self.steps]] = 100.0
        self.steps += 1
        return logits


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_eos_rows_finish_at_different_steps_and_are_padded(temperature):
    script = [
        [1, EOS, 2, 3, 4, 5],  # done after step 2
        [6, 7, 8, EOS, 9, 10],  # done after step 4
        [EOS, 11, 12, 13, 14, 15],  # done at once
    ]
    fake = Scripted(script)
    prompt = torch.tensor([[40, 41], [42, 43], [44, 45]])
    out = generate(fake, prompt, 6, temperature=temperature, eos_id=EOS,
                   generator=torch.Generator().manual_seed(0))
    assert out[:, 2:].tolist() == [[1, EOS, EOS, EOS], [6, 7, 8, EOS], [EOS, EOS, EOS, EOS]]
    assert fake.steps == 4  # stopped when the last row finished, not after 6


def test_a_row_without_eos_runs_to_max_new_tokens():
    fake = Scripted([[EOS, 1, 1, 1], [2, 3, 4, 5]])
    out = generate(fake, torch.tensor([[40], [41]]), 4, eos_id=EOS)
    assert out[:, 1:].tolist() == [[EOS, EOS, EOS, EOS], [2, 3, 4, 5]]
    assert fake.steps == 4


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"max_new_tokens": -1}, ValueError, ["max_new_tokens must be an int >= 0", "-1"]),
        ({"max_new_tokens": 2.5}, TypeError, ["max_new_tokens must be an int >= 0", "2.5"]),
        ({"max_new_tokens": True}, TypeError, ["max_new_tokens must be an int >= 0", "True"]),
        ({"temperature": -0.5}, ValueError, ["temperature must be >= 0", "0 means greedy", "-0.5"]),
        ({"temperature": float("nan")}, ValueError, ["temperature must be >= 0", "nan"]),
        ({"temperature": 1.0, "top_k": 0}, ValueError, ["top_k must be an int >= 1 or None", "got 0"]),
        ({"temperature": 1.0, "top_k": -3}, ValueError, ["top_k must be an int >= 1 or None", "-3"]),
        ({"temperature": 1.0, "top_k": 2.0}, TypeError, ["top_k must be an int >= 1 or None", "2.0"]),
        ({"temperature": 1.0, "top_k": True}, TypeError, ["top_k must be an int >= 1 or None", "True"]),
        ({"temperature": 1.0, "top_p": 0}, ValueError, ["top_p must be in (0, 1] or None", "got 0"]),
        ({"temperature": 1.0, "top_p": 0.0}, ValueError, ["top_p must be in (0, 1] or None", "0.0"]),
        ({"temperature": 1.0, "top_p": 1.5}, ValueError, ["top_p must be in (0, 1] or None", "1.5"]),
        ({"temperature": 1.0, "top_p": -0.2}, ValueError, ["top_p must be in (0, 1] or None", "-0.2"]),
        ({"eos_id": -1}, ValueError, ["eos_id must be a token id (an int >= 0) or None", "-1"]),
        ({"eos_id": 1.5}, TypeError, ["eos_id must be a token id", "1.5"]),
        ({"eos_id": "50256"}, TypeError, ["eos_id must be a token id", "'50256'"]),
        ({"eos_id": True}, TypeError, ["eos_id must be a token id", "True"]),
    ],
)
def test_bad_generation_settings_are_refused_before_the_model_runs(model, kwargs, error, words):
    """A count that is no int (a float, a bool, a str) is a TypeError; a number out of
    range a ValueError."""
    spy = Spy(model)
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(Exception) as err:
        generate(spy.model, torch.tensor([[1, 2, 3]]), **kwargs)
    assert type(err.value) is error, f"{type(err.value).__name__}: {err.value}"
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert spy.shapes == []


@pytest.mark.parametrize(
    "kwargs, word",
    [({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 1.5}, "top_p"),
     ({"top_p": 0}, "top_p")],
)
def test_next_token_probabilities_applies_the_same_rules(kwargs, word):
    with pytest.raises(ValueError, match=f"^{word} must be"):
        next_token_probabilities(torch.zeros(1, 10), **kwargs)


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"temperature": 1.0, "top_k": 1},
                                    {"temperature": 1.0, "top_p": 1.0}, {"temperature": 2.0, "top_p": 1e-9}])
def test_boundary_generation_settings_are_accepted(model, kwargs):
    out = generate(model, torch.tensor([[1, 2, 3]]), 2, generator=torch.Generator().manual_seed(0), **kwargs)
    assert out.shape == (1, 5)


@pytest.mark.parametrize(
    "prompt, error, got",
    [
        (torch.tensor([1, 2, 3]), ValueError, "got (3,)"),  # one prompt without its batch dimension
        (torch.ones(1, 2, 3, dtype=torch.long), ValueError, "got (1, 2, 3)"),
        (torch.tensor(5), ValueError, "got ()"),
        ([[1, 2, 3]], TypeError, "got list"),  # ids straight from the tokenizer, not a tensor
        ([1, 2, 3], TypeError, "got list"),
        ((1, 2, 3), TypeError, "got tuple"),
    ],
)
def test_a_prompt_that_is_not_a_batch_tensor_is_named_by_generate(model, prompt, error, got):
    """A tensor of another shape is a wrong value (ValueError), anything else than a tensor
    a wrong type (TypeError)."""
    spy = Spy(model)
    for use_cache in (True, False):
        with pytest.raises(Exception) as err:
            generate(spy.model, prompt, 2, use_cache=use_cache)
        message = str(err.value)
        assert type(err.value) is error, f"{type(err.value).__name__}: {message}"  # not PyTorch's IndexError
        assert message.startswith("the prompt must be a tensor of token ids of shape (batch, tokens), ")
        assert got in message
        assert "torch.tensor([ids])" in message and "ids.unsqueeze(0)" in message
    assert spy.shapes == []  # refused before the model runs


def test_the_suggested_fixes_for_a_prompt_work(model):
    ids = [1, 2, 3]
    expected = generate(model, torch.tensor([ids]), 2)
    assert expected.shape == (1, 5)
    assert torch.equal(generate(model, torch.tensor(ids).unsqueeze(0), 2), expected)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"temperature": "hot"}, ["temperature must be a number", "'hot'"]),
        ({"temperature": "0.7"}, ["temperature must be a number", "'0.7'"]),
        ({"temperature": True}, ["temperature must be a number", "True"]),
        ({"temperature": 1.0, "top_p": "0.9"}, ["top_p must be a number", "'0.9'"]),
        ({"temperature": 1.0, "top_p": [0.9]}, ["top_p must be a number", "[0.9]"]),
    ],
)
def test_a_setting_that_is_not_a_number_is_a_type_error(model, kwargs, words):
    spy = Spy(model)
    with pytest.raises(TypeError) as err:
        generate(spy.model, torch.tensor([[1, 2, 3]]), 2, **kwargs)
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert spy.shapes == []
    with pytest.raises(TypeError, match="must be a number"):
        next_token_probabilities(torch.zeros(1, 10), **kwargs)


def test_temperature_none_is_named(model):
    with pytest.raises(TypeError) as err:
        generate(model, torch.tensor([[1, 2, 3]]), 2, temperature=None)
    assert str(err.value) == "temperature must be a number, got None"


def test_integer_settings_are_numbers_too(model):
    out = generate(model, torch.tensor([[1, 2, 3]]), 2, temperature=1, top_p=1,
                   generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 5)


# --- generate_text_simple: the book's loop refuses what it would misread -------------


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"idx": torch.tensor([1, 2, 3])}, ValueError, ["the prompt must be", "(batch, tokens), got (3,)", "unsqueeze(0)"]),
        ({"idx": [[1, 2, 3]]}, TypeError, ["the prompt must be", "got list", "torch.tensor([ids])"]),
        ({"context_size": -2}, ValueError, ["context_size must be an int >= 1, got -2"]),  # would drop 2 tokens
        ({"context_size": 0}, ValueError, ["context_size must be an int >= 1, got 0"]),  # would feed everything
        ({"context_size": None}, TypeError, ["context_size must be an int >= 1, got None"]),
        ({"context_size": 4.0}, TypeError, ["context_size must be an int >= 1, got 4.0"]),
        ({"max_new_tokens": -3}, ValueError, ["max_new_tokens must be an int >= 0, got -3"]),  # would return idx
        ({"max_new_tokens": 2.0}, TypeError, ["max_new_tokens must be an int >= 0, got 2.0"]),
        ({"max_new_tokens": True}, TypeError, ["max_new_tokens must be an int >= 0, got True"]),
    ],
)
def test_generate_text_simple_refuses_what_its_loop_would_misread(model, kwargs, error, words):
    spy = Spy(model)
    args = {"idx": torch.tensor([[1, 2, 3]]), "max_new_tokens": 2, "context_size": CONTEXT, **kwargs}
    with pytest.raises(Exception) as err:
        generate_text_simple(spy.model, **args)
    assert type(err.value) is error, f"{type(err.value).__name__}: {err.value}"
    for word in words:
        assert word in str(err.value), (word, str(err.value))
    assert spy.shapes == []  # refused before the model runs


def test_generate_text_simple_accepts_the_boundaries(model):
    prompt = torch.tensor([[1, 2, 3]])
    assert torch.equal(generate_text_simple(model, prompt, 0, CONTEXT), prompt)
    spy = Spy(model)
    out = generate_text_simple(spy.model, prompt, 2, 1)  # a window of one token
    assert out.shape == (1, 5) and spy.shapes == [(1, 1), (1, 1)]
    assert torch.equal(out, generate(model, prompt, 2, context_size=1))


# --- the tokenizer helpers ---------------------------------------------------------


@pytest.mark.parametrize("text, got", [(123, "got int"), (b"Hello", "got bytes"), (["Hello"], "got list"),
                                       (None, "got NoneType")])
def test_text_to_token_ids_wants_a_string(text, got):
    with pytest.raises(TypeError) as err:
        text_to_token_ids(text)
    assert str(err.value) == f"text must be a str, {got}"


def test_token_ids_to_text_takes_a_list_or_a_tensor():
    ids = get_tokenizer().encode("Every effort moves you")
    assert ids == [6109, 3626, 6100, 345]
    for form in (ids, torch.tensor(ids), torch.tensor([ids]), tuple(ids), torch.tensor(ids, dtype=torch.int32)):
        assert token_ids_to_text(form) == "Every effort moves you"
    assert token_ids_to_text([]) == ""
    assert token_ids_to_text(text_to_token_ids("Hello, I am")) == "Hello, I am"
    assert token_ids_to_text([0, 50256]) == "!<|endoftext|>"  # the smallest and largest id


@pytest.mark.parametrize(
    "token_ids, error, words",
    [
        # several rows: decoding must not glue them into one text
        (torch.tensor([[6109, 3626], [6109, 1110]]), ValueError, ["token_ids must be one sequence", "got (2, 2)",
                                                                   "[token_ids_to_text(row) for row in ids]"]),
        (torch.ones(1, 1, 3, dtype=torch.long), ValueError, ["token_ids must be one sequence", "got (1, 1, 3)"]),
        (torch.tensor(5), ValueError, ["token_ids must be one sequence", "got ()"]),
        ([50257], ValueError, ["token_ids must be in [0, 50257), got 50257"]),  # tiktoken: KeyError
        (torch.tensor([3, -1]), ValueError, ["token_ids must be in [0, 50257), got -1"]),  # OverflowError
        ([2**70], ValueError, ["token_ids must be in [0, 50257)"]),
        (torch.tensor([1.0, 2.0]), TypeError, ["token_ids must hold ints, got 1.0 (float)"]),
        ([True, False], TypeError, ["token_ids must hold ints, got True (bool)"]),
        ([[1, 2], [3, 4]], TypeError, ["token_ids must hold ints, got [1, 2] (list)"]),
        (["Every"], TypeError, ["token_ids must hold ints", "'Every'"]),
        ("Every", TypeError, ["token_ids must be a tensor or a list of ints, got str"]),
        (None, TypeError, ["token_ids must be a tensor or a list of ints, got NoneType"]),
    ],
)
def test_token_ids_to_text_refuses_what_is_not_one_sequence_of_ids(token_ids, error, words):
    with pytest.raises(Exception) as err:
        token_ids_to_text(token_ids)
    assert type(err.value) is error, f"{type(err.value).__name__}: {err.value}"
    for word in words:
        assert word in str(err.value), (word, str(err.value))
