"""Random misuse of the public functions gets a clear error (hypothesis).

Each argument is drawn valid, or (one time in four) wrong: a wrong shape, dtype, range,
size or type. A wrong argument carries the words that name it in a message, and the
exception it must raise: TypeError when its type is wrong (a str, None, a bool or a float
where an int belongs, a list where a tensor belongs, a tensor of another dtype), ValueError
when it has the right type and a wrong value (out of range, a wrong shape, NaN). When
every argument is valid the call must simply work. When one is wrong, the call must raise
the exception of a wrong argument its message names: never the other one of the two, an
IndexError, a KeyError or a RuntimeError from deep inside torch or tiktoken, and never a
quiet return.
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
    error: type | None = None  # TypeError (a wrong type) or ValueError (a wrong value)


def arg(draw, valid, names, wrong_type=None, wrong_value=None):
    """A valid value three times in four (shrinking goes to valid), else one of a wrong
    type or of a wrong value, which records the exception it must raise."""
    if draw(st.sampled_from([False, False, False, True])):
        kinds = [(TypeError, wrong_type), (ValueError, wrong_value)]
        error, wrong = draw(st.sampled_from([(e, s) for e, s in kinds if s is not None]))
        return Arg(draw(wrong), names if isinstance(names, tuple) else (names,), error)
    return Arg(draw(valid))


def wrong_count_type():
    """Not an int: a float (even a whole one), a bool, None, a str."""
    return st.sampled_from([2.0, True, False, None, "2"])


def wrong_count_value(low):
    """An int below the lowest allowed value."""
    return st.integers(-5, low - 1)


def check(call, **args):
    values = {name: a.value for name, a in args.items()}
    wrong = {name: a for name, a in args.items() if a.names}
    if not wrong:
        return call(**values)  # valid: must simply work
    try:
        result = call(**values)
    except (ValueError, TypeError) as err:  # anything else propagates and fails the test
        named = {name: a for name, a in wrong.items() if any(w in str(err) for w in a.names)}
        described = {name: (a.names, a.error.__name__) for name, a in wrong.items()}
        assert named, f"{type(err).__name__}: {err!s} names none of {described}"
        expected = {a.error for a in named.values()}
        assert expected == {type(err)}, (
            f"{type(err).__name__}: {err!s}, for wrong {sorted(named)} which must raise "
            f"{' or '.join(sorted(e.__name__ for e in expected))}")
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
        # wrong types: not a tensor, or a tensor of another dtype than int64 or int32
        Arg(ids.tolist(), names, TypeError), Arg(tuple(ids[0].tolist()), names, TypeError),
        Arg(ids.float(), names, TypeError), Arg(ids.bool(), names, TypeError),
        Arg(ids.to(torch.int16), names, TypeError), Arg(ids.to(torch.uint8), names, TypeError),
        # wrong values: 1-D, 3-D, 0-D, no tokens, an id outside the vocabulary
        Arg(ids[0], names, ValueError), Arg(ids.unsqueeze(0), names, ValueError),
        Arg(ids[0, 0], names, ValueError), Arg(ids[:, :0], names, ValueError),
        Arg(ids.index_put((torch.tensor(0), torch.tensor(-1)), torch.tensor(VOCAB)), ("token ids",), ValueError),
        Arg(ids.index_put((torch.tensor(0), torch.tensor(-1)), torch.tensor(-1)), ("token ids",), ValueError),
    ])
    if draw(st.sampled_from([False, False, False, True])):
        return draw(wrong)
    return Arg(draw(valid))


@given(token_ids(), st.data())
def test_model_forward(ids, data):
    if not ids.names and data.draw(st.booleans()):  # a sequence longer than the window
        ids = Arg(torch.zeros(1, CONTEXT + data.draw(st.integers(1, 3)), dtype=torch.long), ("context_length",),
                  ValueError)
    with torch.no_grad():
        logits = check(MODEL, in_idx=ids)
    if not ids.names:
        assert logits.shape == (*ids.value.shape, VOCAB)


@st.composite
def counts(draw):
    """max_new_tokens and context_size. (max_new_tokens=0 would return a wrong prompt
    without running the model, so valid counts start at 1 here.)"""
    return {
        "max_new_tokens": arg(draw, st.integers(1, 3), "max_new_tokens", wrong_count_type(), wrong_count_value(0)),
        "context_size": arg(draw, st.integers(1, CONTEXT), "context_size", wrong_count_type(), wrong_count_value(1)),
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
    args["temperature"] = arg(draw, st.one_of(st.sampled_from([0, 0.0, 1]), st.floats(0.1, 3.0)), "temperature",
                              wrong_type=st.sampled_from(["0.7", None, True, [0.7]]),
                              wrong_value=st.one_of(st.floats(-3.0, -0.01), st.just(math.nan)))
    args["top_k"] = arg(draw, st.one_of(st.none(), st.integers(1, VOCAB + 5)), "top_k",
                        wrong_type=st.sampled_from([2.0, True, "3"]), wrong_value=st.integers(-5, 0))
    args["top_p"] = arg(draw, st.one_of(st.none(), st.floats(0.05, 1.0)), "top_p",
                        wrong_type=st.sampled_from(["0.9", True, [0.9]]),
                        wrong_value=st.one_of(st.sampled_from([0, 0.0, math.nan]), st.floats(1.01, 3.0),
                                              st.floats(-3.0, -0.01)))
    args["eos_id"] = arg(draw, st.one_of(st.none(), st.integers(0, VOCAB - 1)), "eos_id",
                         wrong_type=st.sampled_from([1.5, 0.0, "0", True]), wrong_value=st.integers(-5, -1))
    args["use_cache"] = Arg(draw(st.booleans()))
    out = check(lambda **kw: generate(MODEL, **kw), idx=idx, **args)
    if out is not None:  # (rows that all reached eos_id stop early)
        batch, n = idx.value.shape
        assert out.shape[0] == batch and n < out.shape[1] <= n + args["max_new_tokens"].value


@given(st.data())
def test_text_to_token_ids(data):
    text = arg(data.draw, st.text(max_size=30), "text",
               wrong_type=st.one_of(st.integers(), st.binary(max_size=5), st.lists(st.text(max_size=3), max_size=2),
                                    st.none()))
    ids = check(text_to_token_ids, text=text)
    if ids is not None:
        assert ids.dtype == torch.long and ids.shape == (1, ids.numel())


@given(st.data())
def test_token_ids_to_text(data):
    draw = data.draw
    ids = draw(st.lists(st.integers(0, GPT2_VOCAB - 1), max_size=8))
    valid = st.sampled_from([ids, tuple(ids), torch.tensor(ids, dtype=torch.long),
                             torch.tensor([ids], dtype=torch.long), torch.tensor(ids, dtype=torch.int32)])
    wrong_type = st.one_of(  # not a tensor or a list, a tensor of floats, a list of no ints
        st.sampled_from([torch.tensor(ids or [1]).float(), None, 7, "7"]),
        st.lists(st.sampled_from([1.0, True, "a", [1]]), min_size=1, max_size=3),
    )
    wrong_value = st.one_of(  # several rows, three dimensions, ids outside the vocabulary
        st.sampled_from([torch.tensor([ids, ids]), torch.tensor([[ids]])]),
        st.lists(st.one_of(st.integers(GPT2_VOCAB, 2**70), st.integers(-(2**70), -1)), min_size=1, max_size=3),
    )
    text = check(token_ids_to_text, token_ids=arg(draw, valid, "token_ids", wrong_type, wrong_value))
    assert text is None or isinstance(text, str)


@given(st.data())
def test_config(data):
    draw = data.draw

    def field(name, valid, wrong_type, wrong_value=None):
        return arg(draw, valid, f"GPTConfig.{name}", wrong_type, wrong_value)

    size = (wrong_count_type(), wrong_count_value(1))  # e.g. n_layers=12.0 or True; 0
    switch = st.sampled_from([0, 1, "yes", None])  # a bool is wanted: no int stands in
    fields = {
        "vocab_size": field("vocab_size", st.integers(1, 64), *size),
        "context_length": field("context_length", st.integers(1, 8), *size),
        "n_heads": field("n_heads", st.integers(1, 4), *size),
        "n_layers": field("n_layers", st.integers(1, 2), *size),
        "drop_rate": field("drop_rate", st.sampled_from([0, 0.0, 0.1, 0.5]),
                           st.sampled_from(["0.1", True, None]), st.sampled_from([1.0, 1.5, -0.1, math.nan])),
        "qkv_bias": field("qkv_bias", st.booleans(), switch),
        "tie_weights": field("tie_weights", st.booleans(), switch),
    }
    heads = fields["n_heads"].value if not fields["n_heads"].names else 2
    fields["emb_dim"] = field("emb_dim", st.integers(1, 4).map(lambda k: k * heads), *size)
    if heads > 1 and not (fields["emb_dim"].names or fields["n_heads"].names) and draw(st.booleans()):
        # heads of unequal width
        fields["emb_dim"] = Arg(fields["emb_dim"].value + 1, ("emb_dim", "n_heads"), ValueError)
    as_dict = draw(st.booleans())  # the book's dict config goes through the same checks
    model = check(lambda **kw: GPTModel(kw if as_dict else GPTConfig(**kw)), **fields)
    if model is not None:
        with torch.no_grad():
            assert model(torch.zeros(1, 1, dtype=torch.long)).shape == (1, 1, model.cfg.vocab_size)
