"""Random misuse of the public functions gets a clear error (hypothesis).

Each argument is drawn valid, or (one time in four) wrong: a wrong shape, dtype, range,
size or type. A wrong value carries the words that name it in a message. When every
argument is valid the call must simply work. When one is wrong, the call must raise a
ValueError or TypeError whose message names a wrong argument: never an IndexError, a
KeyError or a RuntimeError from deep inside torch or tiktoken, and never a quiet return.
"""

import math
from typing import NamedTuple

import torch
from hypothesis import given
from hypothesis import strategies as st

from llm_from_scratch.generate import generate, generate_text_simple
from llm_from_scratch.model import GPTConfig, GPTModel
from llm_from_scratch.tokenizer import text_to_token_ids, token_ids_to_text

VOCAB, CONTEXT = 50, 6
torch.manual_seed(0)
MODEL = GPTModel(GPTConfig(vocab_size=VOCAB, context_length=CONTEXT, emb_dim=8, n_heads=2, n_layers=1)).eval()
GPT2_VOCAB = 50257


class Arg(NamedTuple):
    value: object
    names: tuple = ()  # words that name the argument in an error message; () when valid


def arg(draw, valid, wrong, names):
    """A valid value three times in four (shrinking goes to valid), else a wrong one."""
    if draw(st.sampled_from([False, False, False, True])):
        return Arg(draw(wrong), names if isinstance(names, tuple) else (names,))
    return Arg(draw(valid))


def wrong_count(low):
    """Wrong types for a count, and ints below its lowest allowed value."""
    return st.one_of(st.integers(-5, low - 1), st.sampled_from([2.0, True, None, "2"]))


def check(call, **args):
    values = {name: a.value for name, a in args.items()}
    wrong = {name: a.names for name, a in args.items() if a.names}
    if not wrong:
        return call(**values)  # valid: must simply work
    try:
        result = call(**values)
    except (ValueError, TypeError) as err:  # anything else propagates and fails the test
        assert type(err) in (ValueError, TypeError), f"{type(err).__name__}: {err}"
        named = [w for words in wrong.values() for w in words if w in str(err)]
        assert named, f"{type(err).__name__}: {err!s} names none of {wrong}"
        return None
    raise AssertionError(f"wrong {sorted(wrong)} accepted, returned {result!r:.200}")


@st.composite
def token_ids(draw, max_tokens=CONTEXT):
    """Ids for the model or a prompt: valid up to max_tokens long, or wrong in one way."""
    batch, n = draw(st.integers(1, 3)), draw(st.integers(1, max_tokens))
    ids = torch.tensor(draw(st.lists(st.lists(st.integers(0, VOCAB - 1), min_size=n, max_size=n),
                                     min_size=batch, max_size=batch)))
    valid = st.sampled_from([ids, ids.to(torch.int32)])
    names = ("token ids", "prompt")
    wrong = st.sampled_from([
        Arg(ids[0], names), Arg(ids.unsqueeze(0), names), Arg(ids[0, 0], names),  # 1-D, 3-D, 0-D
        Arg(ids.tolist(), names), Arg(ids.float(), names), Arg(ids.bool(), names),
        Arg(ids.to(torch.int16), names), Arg(ids.to(torch.uint8), names),
        Arg(ids[:, :0], names),  # no tokens
        Arg(ids.index_put((torch.tensor(0), torch.tensor(-1)), torch.tensor(VOCAB)), ("token ids",)),
        Arg(ids.index_put((torch.tensor(0), torch.tensor(-1)), torch.tensor(-1)), ("token ids",)),
    ])
    if draw(st.sampled_from([False, False, False, True])):
        return draw(wrong)
    return Arg(draw(valid))


@given(token_ids(), st.data())
def test_model_forward(ids, data):
    if not ids.names and data.draw(st.booleans()):  # a sequence longer than the window
        ids = Arg(torch.zeros(1, CONTEXT + data.draw(st.integers(1, 3)), dtype=torch.long), ("context_length",))
    with torch.no_grad():
        logits = check(MODEL, in_idx=ids)
    if not ids.names:
        assert logits.shape == (*ids.value.shape, VOCAB)


@st.composite
def counts(draw):
    """max_new_tokens and context_size. (max_new_tokens=0 would return a wrong prompt
    without running the model, so valid counts start at 1 here.)"""
    return {
        "max_new_tokens": arg(draw, st.integers(1, 3), wrong_count(0), "max_new_tokens"),
        "context_size": arg(draw, st.integers(1, CONTEXT), wrong_count(1), "context_size"),
    }


@given(token_ids(max_tokens=CONTEXT + 3), counts())
def test_generate_text_simple(idx, args):
    out = check(lambda **kw: generate_text_simple(MODEL, **kw), idx=idx, **args)
    if out is not None:
        assert out.shape == (idx.value.shape[0], idx.value.shape[1] + args["max_new_tokens"].value)


@given(token_ids(max_tokens=CONTEXT + 3), counts(), st.data())
def test_generate(idx, args, data):
    draw = data.draw
    if args["context_size"].value is None or (not args["context_size"].names and draw(st.booleans())):
        args["context_size"] = Arg(None)  # valid here: the model's own window
    args["temperature"] = arg(draw, st.one_of(st.sampled_from([0, 0.0, 1]), st.floats(0.1, 3.0)),
                              st.one_of(st.floats(-3.0, -0.01), st.sampled_from([math.nan, "0.7", None, True])),
                              "temperature")
    args["top_k"] = arg(draw, st.one_of(st.none(), st.integers(1, VOCAB + 5)),
                        st.one_of(st.integers(-5, 0), st.sampled_from([2.0, True, "3"])), "top_k")
    args["top_p"] = arg(draw, st.one_of(st.none(), st.floats(0.05, 1.0)),
                        st.one_of(st.sampled_from([0, 0.0, math.nan, "0.9", True]), st.floats(1.01, 3.0),
                                  st.floats(-3.0, -0.01)), "top_p")
    args["eos_id"] = arg(draw, st.one_of(st.none(), st.integers(0, VOCAB - 1)),
                         st.sampled_from([-1, 1.5, "0", True]), "eos_id")
    args["use_cache"] = Arg(draw(st.booleans()))
    out = check(lambda **kw: generate(MODEL, **kw), idx=idx, **args)
    if out is not None:  # (rows that all reached eos_id stop early)
        batch, n = idx.value.shape
        assert out.shape[0] == batch and n < out.shape[1] <= n + args["max_new_tokens"].value


@given(st.data())
def test_text_to_token_ids(data):
    text = arg(data.draw, st.text(max_size=30),
               st.one_of(st.integers(), st.binary(max_size=5), st.lists(st.text(max_size=3), max_size=2), st.none()),
               "text")
    ids = check(text_to_token_ids, text=text)
    if ids is not None:
        assert ids.dtype == torch.long and ids.shape == (1, ids.numel())


@given(st.data())
def test_token_ids_to_text(data):
    draw = data.draw
    ids = draw(st.lists(st.integers(0, GPT2_VOCAB - 1), max_size=8))
    valid = st.sampled_from([ids, tuple(ids), torch.tensor(ids, dtype=torch.long),
                             torch.tensor([ids], dtype=torch.long), torch.tensor(ids, dtype=torch.int32)])
    wrong = st.one_of(
        st.sampled_from([torch.tensor([ids, ids]), torch.tensor([[ids]]), torch.tensor(ids or [1]).float(),
                         None, 7, "7"]),
        st.lists(st.one_of(st.integers(GPT2_VOCAB, 2**70), st.integers(-(2**70), -1)), min_size=1, max_size=3),
        st.lists(st.sampled_from([1.0, True, "a", [1]]), min_size=1, max_size=3),
    )
    text = check(token_ids_to_text, token_ids=arg(draw, valid, wrong, "token_ids"))
    assert text is None or isinstance(text, str)


@given(st.data())
def test_config(data):
    draw = data.draw

    def field(name, valid, wrong):
        return arg(draw, valid, wrong, f"GPTConfig.{name}")

    size = wrong_count(1)
    fields = {
        "vocab_size": field("vocab_size", st.integers(1, 64), size),
        "context_length": field("context_length", st.integers(1, 8), size),
        "n_heads": field("n_heads", st.integers(1, 4), size),
        "n_layers": field("n_layers", st.integers(1, 2), size),
        "drop_rate": field("drop_rate", st.sampled_from([0, 0.0, 0.1, 0.5]),
                           st.sampled_from([1.0, 1.5, -0.1, math.nan, "0.1", True, None])),
        "qkv_bias": field("qkv_bias", st.booleans(), st.sampled_from([0, 1, "yes", None])),
        "tie_weights": field("tie_weights", st.booleans(), st.sampled_from([0, 1, "no", None])),
    }
    heads = fields["n_heads"].value if not fields["n_heads"].names else 2
    fields["emb_dim"] = field("emb_dim", st.integers(1, 4).map(lambda k: k * heads), size)
    if heads > 1 and not fields["emb_dim"].names and draw(st.booleans()):  # heads of unequal width
        fields["emb_dim"] = Arg(fields["emb_dim"].value + 1, ("emb_dim", "n_heads"))
    as_dict = draw(st.booleans())  # the book's dict config goes through the same checks
    model = check(lambda **kw: GPTModel(kw if as_dict else GPTConfig(**kw)), **fields)
    if model is not None:
        with torch.no_grad():
            assert model(torch.zeros(1, 1, dtype=torch.long)).shape == (1, 1, model.cfg.vocab_size)
