"""The KV cache (chapter 12): cached and uncached computation agree, in logits and
tokens, and a cache that does not fit the model or the batch is refused. The cache is
opt-in: generate(..., use_cache=True).

The models are tiny and seeded. GPT-2's initialisation (std 0.02, zero biases) would
weaken these tests: attention is then almost uniform, so a wrong mask moves the logits
only a little, and the query/key/value biases are zero, so a cached path that lost them
would go unnoticed. `scrambled` redraws every parameter at a larger scale, so that
attention is sharp and every parameter matters.
"""

import inspect

import pytest
import torch

from llm_from_scratch.generate import generate, generate_text_simple
from llm_from_scratch.kv_cache import CachedLogits, KVCache, forward_with_cache
from llm_from_scratch.model import GPTConfig, GPTModel

CONFIGS = {
    "base": dict(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2),
    "qkv_bias": dict(vocab_size=97, context_length=16, emb_dim=32, n_heads=4, n_layers=2,
                     qkv_bias=True),
    "3_layers_tied": dict(vocab_size=50, context_length=16, emb_dim=24, n_heads=3,
                          n_layers=3, qkv_bias=True, tie_weights=True),
    "1_head_1_layer": dict(vocab_size=61, context_length=16, emb_dim=16, n_heads=1,
                           n_layers=1),
}


def scrambled(cfg_kwargs, seed=0):
    """A model in eval mode whose every parameter is drawn from N(0, 0.3^2)."""
    torch.manual_seed(seed)
    model = GPTModel(GPTConfig(**cfg_kwargs)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model


def random_ids(cfg, batch, tokens, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (batch, tokens), generator=generator)


def assert_logits_close(actual, expected):
    # float32 sums in another order differ in the last bits; logits here are O(1..10).
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


def record_passes(model):
    """Record the shape of the ids of every forward pass, cached or not, with a pre-hook
    on the token embedding (both paths call it once per pass). Returns the list."""
    shapes = []
    model.tok_emb.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    return shapes


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def model(request):
    return scrambled(CONFIGS[request.param])


# --- logits ------------------------------------------------------------------


def test_scrambled_models_are_sensitive(model):
    """Sanity check of the fixture: attention is far from uniform and logits are O(1)."""
    ids = random_ids(model.cfg, 2, 8)
    with torch.no_grad():
        logits = model(ids)
    assert logits.abs().max() > 1.0


def test_prefill_then_one_token_steps_equal_full_forward(model):
    cfg = model.cfg
    ids = random_ids(cfg, 2, cfg.context_length)
    cache = KVCache(cfg.n_layers)
    with torch.no_grad():
        full = model(ids)
        pieces = [forward_with_cache(model, ids[:, :3], cache)]
        assert len(cache) == 3
        for t in range(3, cfg.context_length):
            pieces.append(forward_with_cache(model, ids[:, t:t + 1], cache))
            assert len(cache) == t + 1
    assert_logits_close(torch.cat(pieces, dim=1), full)


@pytest.mark.parametrize("chunks", [[3, 5, 1, 7], [1, 1, 6, 8], [8, 8], [2, 3, 4, 5, 2], [16]])
def test_chunked_prefill_after_a_cached_prefix_equals_full_forward(model, chunks):
    # A chunk of several tokens after cached ones attends with causal_mask(n > 1, past > 0).
    cfg = model.cfg
    assert sum(chunks) == cfg.context_length
    ids = random_ids(cfg, 3, cfg.context_length, seed=2)
    cache = KVCache(cfg.n_layers)
    pieces, start = [], 0
    with torch.no_grad():
        full = model(ids)
        for size in chunks:
            pieces.append(forward_with_cache(model, ids[:, start:start + size], cache))
            start += size
    assert len(cache) == cfg.context_length
    assert_logits_close(torch.cat(pieces, dim=1), full)


def test_cache_holds_keys_and_values_of_every_layer(model):
    cfg = model.cfg
    cache = KVCache(cfg.n_layers)
    with torch.no_grad():
        forward_with_cache(model, random_ids(cfg, 2, 5), cache)
        forward_with_cache(model, random_ids(cfg, 2, 1, seed=3), cache)
    assert len(cache.layers) == cfg.n_layers
    for layer in cache.layers:
        assert len(layer) == 6
        assert layer.keys.shape == layer.values.shape == (2, cfg.n_heads, 6, cfg.head_dim)


def test_the_cached_pass_uses_the_models_own_modules_and_changes_no_class(model):
    # Chapter 12 works from outside: the book's classes keep forward(x) alone, and a
    # module swapped for a spy is called by the cached pass too.
    cfg = model.cfg
    seen = []
    hook = model.trf_blocks[-1].ff.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    with torch.no_grad():
        forward_with_cache(model, random_ids(cfg, 2, 3), KVCache(cfg.n_layers))
    hook.remove()
    assert seen == [(2, 3, cfg.emb_dim)]
    for module in (model, model.trf_blocks[0], model.trf_blocks[0].att):
        params = inspect.signature(type(module).forward).parameters
        assert list(params)[1:] in (["x"], ["in_idx"])


def test_a_cached_pass_uses_the_models_mask_buffer(model):
    # Drop the mask (nothing masked) and the cached logits of a chunk must change:
    # the pass reads the book's buffer, not a mask of its own.
    cfg = model.cfg
    ids = random_ids(cfg, 2, 8)
    with torch.no_grad():
        reference = forward_with_cache(model, ids, KVCache(cfg.n_layers))
        saved = [b.att.mask.clone() for b in model.trf_blocks]
        for b in model.trf_blocks:
            b.att.mask.zero_()
        unmasked = forward_with_cache(model, ids, KVCache(cfg.n_layers))
        for b, mask in zip(model.trf_blocks, saved):
            b.att.mask.copy_(mask)
    assert not torch.allclose(unmasked[:, 0], reference[:, 0], atol=1e-3)


def test_last_only_is_the_last_row_of_the_full_logits(model):
    cfg = model.cfg
    ids = random_ids(cfg, 2, 9)
    with torch.no_grad():
        full = model(ids)
        last = forward_with_cache(model, ids, KVCache(cfg.n_layers), last_only=True)
        cache = KVCache(cfg.n_layers)
        forward_with_cache(model, ids[:, :4], cache)
        last_cached = forward_with_cache(model, ids[:, 4:], cache, last_only=True)
    assert last.shape == (2, 1, cfg.vocab_size)
    assert_logits_close(last, full[:, -1:])
    assert_logits_close(last_cached, full[:, -1:])


def test_a_step_past_context_length_is_rejected_and_leaves_the_cache_alone(model):
    cfg = model.cfg
    ids = random_ids(cfg, 1, cfg.context_length + 1)
    cache = KVCache(cfg.n_layers)
    with torch.no_grad():
        forward_with_cache(model, ids[:, :cfg.context_length], cache)
        with pytest.raises(ValueError, match="context_length"):
            forward_with_cache(model, ids[:, cfg.context_length:], cache)
        assert len(cache) == cfg.context_length

        cache = KVCache(cfg.n_layers)
        forward_with_cache(model, ids[:, :10], cache)
        with pytest.raises(ValueError, match=r"after 10 cached tokens .*context_length"):
            forward_with_cache(model, ids[:, 10:], cache)  # 7 more tokens would make 17 > 16
        assert len(cache) == 10



# --- a cache that does not fit -------------------------------------------------


def refused(call, error=ValueError):
    """The message of the ValueError (or `error`) `call` raises, not an IndexError or a
    torch RuntimeError."""
    with pytest.raises(Exception) as err:
        call()
    assert type(err.value) is error, f"{type(err.value).__name__}: {err.value}"
    return str(err.value)


@pytest.mark.parametrize("n_layers", [1, 3])
def test_a_cache_for_another_number_of_layers_is_refused(n_layers):
    model = scrambled(CONFIGS["base"])  # 2 layers
    cache = KVCache(n_layers)
    with torch.no_grad():
        message = refused(lambda: forward_with_cache(model, random_ids(model.cfg, 2, 4), cache))
    assert f"cache has n_layers={n_layers}, the model has n_layers=2" in message
    assert "KVCache(model.cfg.n_layers)" in message
    assert len(cache) == 0  # refused before anything was appended


@pytest.mark.parametrize("rows", [1, 3])
def test_a_cache_reused_for_another_batch_size_is_refused(rows):
    model = scrambled(CONFIGS["base"])
    cache = KVCache(model.cfg.n_layers)
    with torch.no_grad():
        forward_with_cache(model, random_ids(model.cfg, 2, 4), cache)
        message = refused(lambda: forward_with_cache(model, random_ids(model.cfg, rows, 1), cache))
        assert f"cache holds 2 rows (sequences), in_idx has {rows}" in message
        assert len(cache) == 4 and all(layer.keys.shape[0] == 2 for layer in cache.layers)
        forward_with_cache(model, random_ids(model.cfg, 2, 1), cache)  # the right batch still works
    assert len(cache) == 5


@pytest.mark.parametrize("width", [dict(emb_dim=16), dict(n_heads=2)])
def test_a_cache_filled_by_a_model_of_another_width_is_refused(width):
    model = scrambled(CONFIGS["base"])  # 4 heads x 8
    other = scrambled({**CONFIGS["base"], **width})
    cache = KVCache(model.cfg.n_layers)
    with torch.no_grad():
        forward_with_cache(model, random_ids(model.cfg, 2, 4), cache)
        message = refused(lambda: forward_with_cache(other, random_ids(other.cfg, 2, 1), cache))
    expected = f"the model has {other.cfg.n_heads} heads x {other.cfg.head_dim}"
    assert "cache holds keys of 4 heads x 8" in message and expected in message
    assert len(cache) == 4  # refused before anything was appended


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError), (True, TypeError),
                                        (None, TypeError), ("2", TypeError)])
def test_kv_cache_needs_a_positive_int_number_of_layers(bad, error):
    message = refused(lambda: KVCache(bad), error)
    assert "n_layers must be an int >= 1" in message and repr(bad) in message


def test_forward_with_cache_needs_a_gpt_model_and_a_kv_cache():
    model = scrambled(CONFIGS["base"])
    ids = random_ids(model.cfg, 2, 4)
    with torch.no_grad():
        message = refused(lambda: forward_with_cache(IdsToLogits(model), ids, KVCache(model.cfg.n_layers)),
                          TypeError)
        assert message == "forward_with_cache needs a GPTModel, got IdsToLogits"
        message = refused(lambda: forward_with_cache(model, ids, [None] * model.cfg.n_layers), TypeError)
        assert message == "cache must be a KVCache, got list"


# --- generation --------------------------------------------------------------


@pytest.mark.parametrize("prompt_length, new_tokens", [(5, 8), (5, 30), (1, 20), (20, 6)])
def test_greedy_tokens_are_the_same_with_and_without_the_cache(model, prompt_length, new_tokens):
    # (5, 30) and (1, 20) run past the 16-token window; (20, 6) starts past it.
    cfg = model.cfg
    prompt = random_ids(cfg, 3, prompt_length)
    cached = generate(model, prompt, max_new_tokens=new_tokens, use_cache=True)
    uncached = generate(model, prompt, max_new_tokens=new_tokens)  # the default: no cache
    book = generate_text_simple(model, prompt, max_new_tokens=new_tokens,
                                context_size=cfg.context_length)
    assert cached.shape == (3, prompt_length + new_tokens)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, book)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("settings", [dict(temperature=1.0), dict(temperature=0.7, top_k=10),
                                      dict(temperature=1.5, top_p=0.9)], ids=str)
def test_sampled_tokens_are_the_same_with_the_same_generator_seed(model, seed, settings):
    prompt = random_ids(model.cfg, 2, 4)

    def sample(use_cache):
        generator = torch.Generator().manual_seed(seed)
        return generate(model, prompt, max_new_tokens=24, generator=generator,
                        use_cache=use_cache, **settings)

    cached, uncached = sample(True), sample(False)
    assert cached.shape == (2, 28)
    assert torch.equal(cached, uncached)


def test_end_of_text_stops_the_same_with_and_without_the_cache(model):
    prompt = random_ids(model.cfg, 3, 4)
    free = generate(model, prompt, max_new_tokens=10)
    eos = int(free[0, 6])  # a token row 0 is certain to emit: it will stop there
    cached = generate(model, prompt, max_new_tokens=10, eos_id=eos, use_cache=True)
    uncached = generate(model, prompt, max_new_tokens=10, eos_id=eos, use_cache=False)
    assert torch.equal(cached, uncached)
    assert (cached[0, 6:] == eos).all()


@pytest.mark.parametrize("prompt_length, new_tokens", [(5, 1), (5, 6), (3, 13)])
def test_cache_length_after_generation(prompt_length, new_tokens):
    # The last new token is never fed back, so the cache holds prompt + new - 1 tokens.
    model = scrambled(CONFIGS["base"])
    cached = CachedLogits(model, model.cfg.context_length)
    idx = random_ids(model.cfg, 2, prompt_length)
    with torch.no_grad():
        for _ in range(new_tokens):  # generate's loop, greedy
            idx = torch.cat([idx, cached(idx).argmax(-1, keepdim=True)], dim=1)
    out, cache = idx, cached.cache
    assert torch.equal(out, generate(model, out[:, :prompt_length], new_tokens))
    assert out.shape == (2, prompt_length + new_tokens)
    assert len(cache) == prompt_length + new_tokens - 1
    for layer in cache.layers:
        assert layer.keys.shape == (2, 4, prompt_length + new_tokens - 1, 8)


def test_cached_logits_refuses_a_text_that_did_not_grow():
    model = scrambled(CONFIGS["base"])
    cached = CachedLogits(model, model.cfg.context_length)
    idx = random_ids(model.cfg, 2, 5)
    with torch.no_grad():
        cached(idx)
        with pytest.raises(ValueError, match="the text has 5 tokens and the cache was fed 5"):
            cached(idx)
        with pytest.raises(ValueError, match="grown by at least one id"):
            cached(idx[:, :3])
        assert cached(torch.cat([idx, idx[:, :1]], dim=1)).shape == (2, model.cfg.vocab_size)


def test_generate_feeds_one_token_per_step_after_the_prefill():
    model = scrambled(CONFIGS["base"])
    context, prompt_length, new_tokens = model.cfg.context_length, 5, 20
    shapes = record_passes(model)
    generate(model, random_ids(model.cfg, 2, prompt_length), max_new_tokens=new_tokens,
             use_cache=True)
    one_token_steps = context - prompt_length  # until the cache holds the full window
    full_windows = new_tokens - 1 - one_token_steps
    assert shapes == ([(2, prompt_length)] + [(2, 1)] * one_token_steps
                      + [(2, context)] * full_windows)


def test_generate_without_the_cache_runs_the_books_forward_on_the_window():
    # The default, use_cache=False: the whole window every step, through GPTModel.forward.
    model = scrambled(CONFIGS["base"])
    calls = []
    model.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].shape)))
    generate(model, random_ids(model.cfg, 1, 5), 4)
    assert calls == [(1, 5), (1, 6), (1, 7), (1, 8)]


class IdsToLogits(torch.nn.Module):
    """Not a GPTModel: any module mapping ids to logits, as the book's loop calls it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, idx):
        return self.model(idx)


def test_use_cache_is_opt_in_and_needs_a_gpt_model():
    model = scrambled(CONFIGS["base"])
    prompt = random_ids(model.cfg, 2, 5)
    other, window = IdsToLogits(model), model.cfg.context_length
    assert torch.equal(generate(other, prompt, 6, window), generate(model, prompt, 6, use_cache=True))
    with pytest.raises(TypeError, match="use_cache=True needs a GPTModel, got IdsToLogits"):
        generate(other, prompt, 6, window, use_cache=True)


def test_the_books_positional_arguments():
    # generate(model, idx, max_new_tokens, context_size, temperature, top_k, eos_id), as the
    # book calls it; a context_size below the window crops, with the cache as without it.
    model = scrambled(CONFIGS["qkv_bias"])
    prompt = random_ids(model.cfg, 2, 6)
    book = generate_text_simple(model, prompt, 12, 8)
    assert torch.equal(generate(model, prompt, 12, 8), book)
    assert torch.equal(generate(model, prompt, 12, 8, 0.0, None, None, use_cache=True), book)
    torch.manual_seed(5)
    sampled = generate(model, prompt, 12, 8, 1.0, 10)
    torch.manual_seed(5)
    assert torch.equal(generate(model, prompt, 12, 8, 1.0, 10, None, use_cache=True), sampled)


def test_a_bfloat16_model_generates_with_the_cache():
    model = scrambled(CONFIGS["qkv_bias"]).to(torch.bfloat16)
    cfg = model.cfg
    prompt = random_ids(cfg, 2, 5)
    out = generate(model, prompt, max_new_tokens=20, use_cache=True)  # past the 16-token window too
    assert out.shape == (2, 25) and out.dtype == torch.long
    assert torch.equal(out[:, :5], prompt)
    assert int(out.min()) >= 0 and int(out.max()) < cfg.vocab_size

    cache = KVCache(cfg.n_layers)
    with torch.no_grad():
        full = model(prompt)
        forward_with_cache(model, prompt[:, :4], cache)
        step = forward_with_cache(model, prompt[:, 4:], cache)
    assert cache.layers[0].keys.dtype == torch.bfloat16
    assert step.dtype == torch.bfloat16 and step.shape == (2, 1, cfg.vocab_size)
    # bfloat16 keeps about 3 significant digits: agreement only up to its rounding.
    torch.testing.assert_close(step.float(), full[:, -1:].float(), atol=0.1, rtol=0.02)


def test_cached_and_uncached_generation_agree_at_gpt2_small_width():
    # Every other model here is at most 32 wide; users run 768 wide (12 heads of 64), where
    # float32 sums are longer and a cached step adds in another order. GPT-2 small's width,
    # heads and biases with PyTorch's default draws, as the book's model has them (untied:
    # a tied head at these draws mostly repeats the last token, whatever its position),
    # cut in depth, vocabulary and window so that it runs in seconds. 6 + 14 tokens cross
    # the 16-token window; a 20-token prompt starts past it.
    torch.manual_seed(123)
    cfg = GPTConfig(vocab_size=1000, context_length=16, emb_dim=768, n_heads=12, n_layers=2,
                    qkv_bias=True)
    model = GPTModel(cfg).eval()
    for prompt_length, new_tokens in [(6, 14), (20, 3)]:
        prompt = random_ids(cfg, 2, prompt_length)
        book = generate_text_simple(model, prompt, new_tokens, cfg.context_length)
        assert torch.equal(generate(model, prompt, new_tokens, use_cache=True), book)

        def sample(use_cache):
            generator = torch.Generator().manual_seed(0)
            return generate(model, prompt, new_tokens, temperature=0.5, top_k=50,
                            generator=generator, use_cache=use_cache)

        assert torch.equal(sample(True), sample(False))
