"""Decoding (chapter 9): greedy and sampled generation, truncation, end-of-text, errors.

A tiny seeded GPTModel stands in for GPT-2 where real logits are needed; a scripted fake
model, which returns logits we choose, forces situations a random model will not produce
on cue (an end-of-text token at a given step in a given row). Every model here is called
as the book calls one, `model(ids)`, with nothing else.
"""

import math
from types import SimpleNamespace

import pytest
import torch

from llm_from_scratch.generate import generate, generate_text_simple, next_token_probabilities
from llm_from_scratch.model import GPTConfig, GPTModel

EOS = 50256
CONTEXT = 8
TOY = torch.tensor([[4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79]])  # the book's


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(123)
    cfg = GPTConfig(vocab_size=97, context_length=CONTEXT, emb_dim=32, n_heads=4, n_layers=2)
    return GPTModel(cfg).eval()


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 97, (3, 5), generator=generator)


class ScriptedModel:
    """A stand-in model: at generation step s, row r scores token script[r][s] highest.

    It records the shape of every input it is called with.
    """

    def __init__(self, script, prompt_length, vocab_size=50257, context_length=1024):
        self.script = torch.tensor(script)
        self.prompt_length = prompt_length
        self.cfg = SimpleNamespace(vocab_size=vocab_size, context_length=context_length, n_layers=1)
        self.calls = []

    def __call__(self, idx):
        self.calls.append(tuple(idx.shape))
        step = len(self.calls) - 1
        logits = torch.zeros(idx.shape[0], idx.shape[1], self.cfg.vocab_size)
        # A margin of 100 makes the scripted token certain when sampling at temperature 1.
        logits[torch.arange(idx.shape[0]), -1, self.script[:, step]] = 100.0
        return logits


class ShapeSpy:
    """Wraps a model and records the shape of every input it receives."""

    def __init__(self, model):
        self.model, self.cfg, self.shapes = model, model.cfg, []

    def __call__(self, idx):
        self.shapes.append(tuple(idx.shape))
        return self.model(idx)


class ToyModel:
    """A stand-in model whose last position always scores the book's nine toy words."""

    def __init__(self, logits):
        self.logits = logits
        self.cfg = SimpleNamespace(vocab_size=logits.numel(), context_length=16, n_layers=1)

    def __call__(self, idx):
        return self.logits.expand(idx.shape[0], idx.shape[1], -1).clone()


def books_loop(model, idx, max_new_tokens, context_size):
    """The book's generate_text_simple (section 4.7), restated: crop, last position,
    softmax, argmax, append."""
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])[:, -1, :]
        probas = torch.softmax(logits, dim=-1)
        idx = torch.cat((idx, torch.argmax(probas, dim=-1, keepdim=True)), dim=1)
    return idx


# --- greedy ------------------------------------------------------------------


def test_greedy_generate_equals_generate_text_simple(model, prompts):
    # 12 new tokens on a 5-token prompt run past the 8-token window, so the crop is used too.
    book = generate_text_simple(model, prompts, max_new_tokens=12, context_size=CONTEXT)
    ours = generate(model, prompts, max_new_tokens=12)
    assert ours.shape == (3, 17)
    assert torch.equal(ours, book)
    assert torch.equal(ours[:, :5], prompts)


@pytest.mark.parametrize("context_size", [CONTEXT, 3, 1])
def test_greedy_decoding_equals_the_books_loop(model, prompts, context_size):
    expected = books_loop(model, prompts, 12, context_size)
    assert not torch.equal(expected[:, 5:], expected[:, 5:6].expand(-1, 12))  # not one token
    assert torch.equal(generate_text_simple(model, prompts, 12, context_size), expected)
    assert torch.equal(generate(model, prompts, 12, context_size), expected)


@pytest.mark.parametrize("decode", ["generate_text_simple", "generate", "generate sampling"])
def test_the_model_is_called_with_the_ids_alone(model, prompts, decode):
    """No cache, no last_only: the decoders call a GPTModel as the book's loop does."""
    calls = []
    handle = model.register_forward_pre_hook(
        lambda _, args, kwargs: calls.append((len(args), tuple(args[0].shape), dict(kwargs))),
        with_kwargs=True)
    try:
        if decode == "generate_text_simple":
            generate_text_simple(model, prompts, 5, CONTEXT)
        else:
            temperature = 1.0 if decode == "generate sampling" else 0.0
            generate(model, prompts, 5, temperature=temperature,
                     generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    # 5, 6, 7, 8 tokens, then the 8-token window
    assert calls == [(1, (3, n), {}) for n in (5, 6, 7, 8, 8)]


def test_greedy_ignores_the_global_random_state(model, prompts):
    torch.manual_seed(1)
    a = generate(model, prompts, max_new_tokens=4)
    torch.manual_seed(2)
    b = generate(model, prompts, max_new_tokens=4)
    assert torch.equal(a, b)


def test_greedy_takes_the_argmax_of_the_last_position(model, prompts):
    out = generate(model, prompts, max_new_tokens=1)
    with torch.no_grad():
        expected = model(prompts)[:, -1, :].argmax(dim=-1)
    assert torch.equal(out[:, -1], expected)


def test_max_new_tokens_zero_returns_the_input_without_running_the_model(prompts):
    fake = ScriptedModel([[1], [2], [3]], prompt_length=5)
    out = generate(fake, prompts, max_new_tokens=0, temperature=1.0, eos_id=EOS)
    assert torch.equal(out, prompts)
    assert fake.calls == []
    assert torch.equal(generate_text_simple(fake, prompts, 0, CONTEXT), prompts)


def test_long_prompts_are_cropped_to_the_context_window(model):
    long_prompt = torch.arange(20).reshape(1, 20) % 97  # 20 tokens, the window is 8
    spy = ShapeSpy(model)
    out = generate(spy, long_prompt, max_new_tokens=4)
    assert spy.shapes == [(1, CONTEXT)] * 4  # the model never sees more than the window
    assert torch.equal(out[:, :20], long_prompt)  # the output keeps the whole prompt
    # Only the last 8 tokens matter for what comes next.
    assert torch.equal(out[:, 20:], generate(model, long_prompt[:, -CONTEXT:], 4)[:, CONTEXT:])
    # The model itself refuses the uncropped prompt, so the crop is what makes this work.
    with pytest.raises(ValueError, match="context_length"):
        model(long_prompt)


# --- sampling ----------------------------------------------------------------


def test_sampling_with_the_same_generator_seed_is_reproducible(model, prompts):
    def sample(seed, **kwargs):
        torch.manual_seed(999 + seed)  # the global state must not matter when a generator is given
        generator = torch.Generator().manual_seed(seed)
        return generate(model, prompts, max_new_tokens=10, temperature=1.5, generator=generator, **kwargs)

    assert torch.equal(sample(123), sample(123))
    assert torch.equal(sample(7, top_k=20, top_p=0.9), sample(7, top_k=20, top_p=0.9))
    # ... and the generator really drives the draws: other seeds give other tokens.
    assert any(not torch.equal(sample(123), sample(seed)) for seed in range(5))


def test_sampling_without_generator_follows_the_global_seed(model, prompts):
    torch.manual_seed(5)
    a = generate(model, prompts, max_new_tokens=6, temperature=1.0)
    torch.manual_seed(5)
    b = generate(model, prompts, max_new_tokens=6, temperature=1.0)
    assert torch.equal(a, b)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 5.0])
def test_top_k_1_equals_greedy(model, prompts, temperature):
    greedy = generate(model, prompts, max_new_tokens=8)
    generator = torch.Generator().manual_seed(0)
    sampled = generate(model, prompts, max_new_tokens=8, temperature=temperature, top_k=1,
                       generator=generator)
    assert torch.equal(sampled, greedy)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 5.0])
def test_tiny_top_p_equals_greedy(model, prompts, temperature):
    greedy = generate(model, prompts, max_new_tokens=8)
    generator = torch.Generator().manual_seed(0)
    sampled = generate(model, prompts, max_new_tokens=8, temperature=temperature, top_p=1e-6,
                       generator=generator)
    assert torch.equal(sampled, greedy)


def test_sampling_draws_from_next_token_probabilities():
    """4,000 rows each draw one token from the toy distribution: the shares come close
    to next_token_probabilities, and truncated tokens are never drawn."""
    prompt = torch.zeros(4000, 1, dtype=torch.long)
    for kwargs in ({"temperature": 1.0}, {"temperature": 2.0, "top_k": 3},
                   {"temperature": 1.0, "top_p": 0.9}):
        out = generate(ToyModel(TOY), prompt, 1, generator=torch.Generator().manual_seed(0),
                       **kwargs)
        shares = torch.bincount(out[:, -1], minlength=9) / 4000
        expected = next_token_probabilities(TOY, **kwargs)[0]
        assert (shares[expected == 0] == 0).all(), kwargs
        assert (shares - expected).abs().max() < 0.03, kwargs  # about 4 standard errors


def test_sampled_tokens_stay_inside_the_top_k(model, prompts):
    generator = torch.Generator().manual_seed(0)
    spy = ShapeSpy(model)
    out = generate(spy, prompts, max_new_tokens=1, temperature=3.0, top_k=3, generator=generator)
    with torch.no_grad():
        allowed = torch.topk(model(prompts)[:, -1, :], 3).indices
    assert all(out[r, -1] in allowed[r] for r in range(prompts.shape[0]))


# --- end of text -------------------------------------------------------------


def test_rows_that_emit_eos_are_padded_and_generation_stops_when_all_are_done():
    script = [
        [11, EOS, 40, 40, 40, 40, 40],  # finishes at step 2: the 40s must be replaced by EOS
        [13, 198, 40, 40, EOS, 40, 40],  # finishes at step 5
        [EOS, 7, 7, 7, 7, 7, 7],  # finishes at once
    ]
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    fake = ScriptedModel(script, prompt_length=3)
    out = generate(fake, prompt, max_new_tokens=7, eos_id=EOS)
    assert out[:, 3:].tolist() == [
        [11, EOS, EOS, EOS, EOS],
        [13, 198, 40, 40, EOS],
        [EOS, EOS, EOS, EOS, EOS],
    ]
    assert len(fake.calls) == 5  # stopped as soon as the last row finished, not after 7


def test_eos_handling_is_the_same_when_sampling():
    script = [[EOS, 40, 40], [40, 40, EOS]]
    prompt = torch.tensor([[1, 2], [3, 4]])
    generator = torch.Generator().manual_seed(0)
    out = generate(ScriptedModel(script, prompt_length=2), prompt, max_new_tokens=3,
                   temperature=1.0, eos_id=EOS, generator=generator)
    assert out[:, 2:].tolist() == [[EOS, EOS, EOS], [40, 40, EOS]]


def test_a_row_that_never_emits_eos_runs_to_max_new_tokens():
    script = [[EOS, 40, 40, 40], [40, 41, 42, 43]]
    fake = ScriptedModel(script, prompt_length=1)
    out = generate(fake, torch.tensor([[1], [2]]), max_new_tokens=4, eos_id=EOS)
    assert out[:, 1:].tolist() == [[EOS, EOS, EOS, EOS], [40, 41, 42, 43]]
    assert len(fake.calls) == 4


def test_without_eos_id_the_eos_token_is_an_ordinary_token():
    script = [[EOS, 40, 41]]
    out = generate(ScriptedModel(script, prompt_length=1), torch.tensor([[1]]), max_new_tokens=3)
    assert out[0, 1:].tolist() == [EOS, 40, 41]


def test_an_eos_in_the_prompt_does_not_finish_the_row():
    fake = ScriptedModel([[40, 41]], prompt_length=2)
    out = generate(fake, torch.tensor([[EOS, 5]]), max_new_tokens=2, eos_id=EOS)
    assert out.tolist() == [[EOS, 5, 40, 41]]


# --- the distribution --------------------------------------------------------



def test_temperature_one_is_the_softmax_and_rows_sum_to_one():
    torch.testing.assert_close(next_token_probabilities(TOY), torch.softmax(TOY, dim=-1))
    for t in (0.1, 1.0, 5.0):
        assert math.isclose(next_token_probabilities(TOY, temperature=t).sum().item(), 1.0, rel_tol=1e-6)


def test_temperature_sharpens_and_flattens_without_changing_the_ranking():
    cold, warm, hot = (next_token_probabilities(TOY, temperature=t)[0] for t in (0.1, 1.0, 5.0))
    assert cold.max() > warm.max() > hot.max() > 1 / 9
    for p in (cold, warm, hot):
        assert p.argmax() == TOY.argmax()
    # The greedy limit: all the mass on the best token.
    assert next_token_probabilities(TOY, temperature=0)[0].tolist() == torch.nn.functional.one_hot(
        TOY.argmax(), 9).float().tolist()


def test_top_k_keeps_the_k_best_and_renormalises():
    probs = next_token_probabilities(TOY, top_k=3)[0]
    kept = [3, 7, 0]  # forward, toward, closer: the three largest logits
    assert set(probs.nonzero().flatten().tolist()) == set(kept)
    torch.testing.assert_close(probs[kept], torch.softmax(TOY[0, kept], dim=-1))
    # k at least the vocabulary size keeps everything.
    torch.testing.assert_close(next_token_probabilities(TOY, top_k=50), torch.softmax(TOY, dim=-1))


def test_top_p_keeps_the_smallest_prefix_that_reaches_p():
    softmax = torch.softmax(TOY, dim=-1)[0]
    # forward (0.572) alone is < 0.9; with toward (0.358) the mass reaches 0.93 >= 0.9.
    probs = next_token_probabilities(TOY, top_p=0.9)[0]
    assert set(probs.nonzero().flatten().tolist()) == {3, 7}
    torch.testing.assert_close(probs[[3, 7]], softmax[[3, 7]] / softmax[[3, 7]].sum())
    # p just below forward's own mass: forward alone.
    assert next_token_probabilities(TOY, top_p=0.5)[0].nonzero().flatten().tolist() == [3]
    # p = 1 keeps every token, exactly as no top_p.
    assert torch.equal(next_token_probabilities(TOY, top_p=1.0), next_token_probabilities(TOY))


def test_top_p_applies_to_the_tempered_distribution():
    narrow = next_token_probabilities(TOY, temperature=0.5, top_p=0.9)[0]
    wide = next_token_probabilities(TOY, temperature=5.0, top_p=0.9)[0]
    assert (narrow > 0).sum() < (wide > 0).sum()


def test_a_batch_of_rows_is_truncated_row_by_row():
    logits = torch.stack([TOY[0], TOY[0].flip(0)])
    probs = next_token_probabilities(logits, top_k=2)
    assert probs[0].nonzero().flatten().tolist() == [3, 7]
    assert probs[1].nonzero().flatten().tolist() == [1, 5]


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"temperature": -0.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": 1.0, "top_k": 0}, "top_k"),
        ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
        ({"temperature": 1.0, "top_p": 1.5}, "top_p"),
        ({"temperature": 1.0, "top_p": -0.1}, "top_p"),
        ({"temperature": 0.0, "top_k": 0}, "top_k"),  # checked even when greedy ignores it
    ],
)
def test_invalid_sampling_parameters_raise_value_error_naming_them(kwargs, word):
    fake = ScriptedModel([[1]], prompt_length=1)
    with pytest.raises(ValueError, match=word) as err:
        generate(fake, torch.tensor([[1]]), 1, **kwargs)
    assert type(err.value) is ValueError
    assert fake.calls == []  # refused before any work
    with pytest.raises(ValueError, match=word) as err:
        next_token_probabilities(TOY, **kwargs)
    assert type(err.value) is ValueError


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"temperature": 1.0, "top_k": 2.5}, "top_k"),  # a count is an int
        ({"temperature": 1.0, "top_k": True}, "top_k"),  # and not a bool
        ({"temperature": 0.0, "top_k": "3"}, "top_k"),
        ({"temperature": "0.5"}, "temperature"),
        ({"temperature": 1.0, "top_p": "0.9"}, "top_p"),
    ],
)
def test_sampling_parameters_of_the_wrong_type_raise_type_error_naming_them(kwargs, word):
    fake = ScriptedModel([[1]], prompt_length=1)
    with pytest.raises(TypeError, match=word):
        generate(fake, torch.tensor([[1]]), 1, **kwargs)
    assert fake.calls == []  # refused before any work
    with pytest.raises(TypeError, match=word):
        next_token_probabilities(TOY, **kwargs)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                        ("3", TypeError), (None, TypeError)])
def test_invalid_max_new_tokens_raises(bad, error):
    with pytest.raises(error, match="max_new_tokens") as err:
        generate(ScriptedModel([[1]], prompt_length=1), torch.tensor([[1]]), bad)
    assert type(err.value) is error


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), (0.8, TypeError), (True, TypeError),
                                        ("8", TypeError)])
def test_invalid_context_size_raises_naming_it(model, prompts, bad, error):
    with pytest.raises(error, match="context_size") as err:
        generate(model, prompts, 3, bad)  # e.g. a temperature passed where the book puts context_size
    assert type(err.value) is error


def test_use_cache_needs_a_gpt_model(prompts):
    with pytest.raises(TypeError, match="use_cache=True needs a GPTModel"):
        generate(ScriptedModel([[1]], prompt_length=5), prompts, 1, use_cache=True)


def test_a_model_without_cfg_needs_context_size(prompts):
    fake = ScriptedModel([[1]], prompt_length=5)
    del fake.cfg
    with pytest.raises(TypeError, match="pass context_size: this model has no cfg"):
        generate(fake, prompts, 1)
    assert fake.calls == []


# --- the book's generate -------------------------------------------------------


def books_generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, eos_id=None):
    """The book's chapter 5 decoder, restated from its description: crop, last position,
    top-k by masking with -inf below the k-th best logit, then temperature and a draw
    with torch.multinomial from the global random state (or argmax), stop at eos_id."""
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])[:, -1, :]
        if top_k is not None:
            kth_best = torch.topk(logits, top_k).values[:, -1]
            logits = torch.where(logits < kth_best, torch.tensor(float("-inf")), logits)
        if temperature > 0.0:
            probs = torch.softmax(logits / temperature, dim=-1)
            next_id = torch.multinomial(probs, num_samples=1)
        else:
            next_id = torch.argmax(logits, dim=-1, keepdim=True)
        if next_id == eos_id:
            break
        idx = torch.cat((idx, next_id), dim=1)
    return idx


class IdsToLogits(torch.nn.Module):
    """Not a GPTModel: any module that maps ids (batch, tokens) to logits will do."""

    def __init__(self, vocab_size=97, width=16):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab_size, width)
        self.head = torch.nn.Linear(width, vocab_size)

    def forward(self, idx):
        return self.head(self.emb(idx).cumsum(dim=1))


@pytest.mark.parametrize("settings", [
    dict(temperature=0.0),
    dict(temperature=1.0),
    dict(temperature=1.4, top_k=25),
    dict(temperature=0.7, top_k=5),
    dict(temperature=0.0, top_k=3),
])
@pytest.mark.parametrize("which", ["GPTModel", "any model"])
def test_the_books_positional_call_gives_the_books_tokens(model, prompts, settings, which):
    torch.manual_seed(0)
    net = model if which == "GPTModel" else IdsToLogits().eval()
    prompt = prompts[:1]  # the book's function handles a batch of one
    args = (net, prompt, 12, 6, settings["temperature"], settings.get("top_k"))
    torch.manual_seed(123)
    theirs = books_generate(*args)
    torch.manual_seed(123)
    ours = generate(*args)
    assert torch.equal(ours, theirs)


def test_the_books_eos_id_stops_like_the_books_function(model, prompts):
    prompt = prompts[:1]
    eos_id = int(generate(model, prompt, 3, CONTEXT)[0, -1])  # the third greedy token
    expected = books_generate(model, prompt, 10, CONTEXT, eos_id=eos_id)
    ours = generate(model, prompt, 10, CONTEXT, 0.0, None, eos_id)
    # The book stops before appending eos_id; ours appends it, then stops.
    assert torch.equal(ours[:, :-1], expected) and int(ours[0, -1]) == eos_id
