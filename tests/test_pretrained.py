"""Loading GPT-2 checkpoints (chapter 11): our model must compute what transformers' GPT-2 does.

A small GPT-2 is built with transformers (no download), every parameter randomised with a
seeded generator, saved in the layouts found in the wild, loaded with `load_gpt2`, and
compared with transformers itself: logits within 1e-4, identical greedy continuations.
Then every way a checkpoint can fail to fit must be reported by name.
"""

import json
import re
import subprocess
import sys

import pytest
import torch

from llm_from_scratch.generate import generate
from llm_from_scratch.model import GPTModel
from llm_from_scratch.pretrained import (
    CheckpointError,
    gpt2_checkpoint_shapes,
    load_gpt2,
    save_gpt2,
)

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

HF_CONFIG = dict(n_embd=64, n_layer=2, n_head=4, n_positions=32, vocab_size=101,
                 bos_token_id=None, eos_token_id=None)
PROMPT = torch.tensor([[3, 14, 15, 92, 65, 35]])


def random_gpt2(seed: int = 123, **config) -> "transformers.GPT2LMHeadModel":
    """A transformers GPT-2 whose every parameter (LayerNorms and biases too) is random."""
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**HF_CONFIG, **config})).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            centre = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0
            p.copy_(centre + 0.3 * torch.randn(p.shape, generator=generator))
    return model


def hf_logits(model, ids=PROMPT):
    with torch.no_grad():
        return model(ids).logits


def hf_greedy(model, ids=PROMPT, n=8):
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                         do_sample=False, pad_token_id=0)
    return out


def our_logits(model, ids=PROMPT):
    with torch.no_grad():
        return model(ids)


def write_state(directory, state, config):
    """A checkpoint directory written by hand: config.json plus model.safetensors."""
    directory.mkdir(parents=True, exist_ok=True)
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()},
                                directory / "model.safetensors", metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="module")
def hf_model():
    return random_gpt2()


@pytest.fixture(scope="module")
def safetensors_dir(hf_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gpt2-safetensors")
    hf_model.save_pretrained(directory)
    assert (directory / "model.safetensors").is_file()
    return directory


@pytest.fixture(scope="module")
def hf_config_dict(safetensors_dir):
    return json.loads((safetensors_dir / "config.json").read_text())


@pytest.fixture(scope="module")
def hf_state(hf_model):
    """transformers' own state dict: 'transformer.' prefix, lm_head.weight included."""
    return {k: v.detach().clone() for k, v in hf_model.state_dict().items()}


# --- fidelity ---------------------------------------------------------------


def test_safetensors_checkpoint_matches_transformers(hf_model, safetensors_dir):
    ours = load_gpt2(safetensors_dir)
    assert not ours.training
    assert ours.out_head.weight is ours.tok_emb.weight  # tied, as GPT-2
    torch.testing.assert_close(our_logits(ours), hf_logits(hf_model), atol=1e-4, rtol=0)
    expected = hf_greedy(hf_model)
    got = generate(ours, PROMPT, 8, temperature=0.0)
    assert got.shape == (1, PROMPT.shape[1] + 8)
    assert torch.equal(got, expected)


def test_overrides_replace_config_fields(hf_model, safetensors_dir):
    ours = load_gpt2(safetensors_dir, drop_rate=0.0)
    assert isinstance(ours, GPTModel) and ours.cfg.drop_rate == 0.0
    torch.testing.assert_close(our_logits(ours), hf_logits(hf_model), atol=1e-4, rtol=0)


def test_loaded_masks_are_those_of_a_freshly_built_model(safetensors_dir):
    # GPT-2's files carry no mask; the translation makes one per block, as GPTModel(cfg)
    # does, and loading fills every buffer (none left on the meta device).
    ours = load_gpt2(safetensors_dir)
    fresh = GPTModel(ours.cfg)
    masks = [block.att.mask for block in ours.trf_blocks]
    assert len(masks) == ours.cfg.n_layers
    for mask, expected in zip(masks, (block.att.mask for block in fresh.trf_blocks)):
        assert not mask.is_meta and mask.dtype == torch.float32
        assert torch.equal(mask, expected)
    assert masks[0].data_ptr() != masks[1].data_ptr()  # one tensor per block, as GPTModel has
    assert not any(t.is_meta for t in ours.state_dict().values())


def test_convert_gives_exactly_the_keys_of_gptmodel(hf_state):
    from llm_from_scratch.model import GPTConfig
    from llm_from_scratch.pretrained import convert_gpt2_state_dict

    cfg = GPTConfig(vocab_size=101, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    qkv_bias=True, tie_weights=True)
    ours = convert_gpt2_state_dict(hf_state, cfg)
    model = GPTModel(cfg)
    assert sorted(ours) == sorted(model.state_dict())
    model.load_state_dict(ours, strict=True)  # raises on a missing or unexpected key
    assert all(t.dtype == torch.float32 for t in ours.values())


def test_save_gpt2_writes_no_mask(tmp_path):
    from llm_from_scratch.model import GPTConfig

    cfg = GPTConfig(vocab_size=101, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    qkv_bias=True)
    assert "trf_blocks.0.att.mask" in GPTModel(cfg).state_dict()
    saved = safetensors_torch.load_file(save_gpt2(GPTModel(cfg), tmp_path) / "model.safetensors")
    assert not [k for k in saved if "mask" in k or re.search(r"\.attn\.(bias|masked_bias)$", k)]
    assert sorted(k.removeprefix("transformer.") for k in saved) == sorted(gpt2_checkpoint_shapes(cfg))


def test_pytorch_model_bin_matches_transformers(hf_model, hf_state, hf_config_dict, tmp_path):
    # transformers 5 always writes safetensors, so the .bin is written as older versions did:
    # torch.save of the state dict (lm_head.weight included, duplicating wte).
    torch.save(hf_state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict))
    ours = load_gpt2(tmp_path)
    assert ours.out_head.weight is ours.tok_emb.weight
    torch.testing.assert_close(our_logits(ours), hf_logits(hf_model), atol=1e-4, rtol=0)
    assert torch.equal(generate(ours, PROMPT, 8), hf_greedy(hf_model))


@pytest.mark.parametrize("zip_format", [True, False])
def test_openai_style_bin_without_prefix_and_with_mask_buffers(hf_model, hf_state, hf_config_dict, tmp_path,
                                                               zip_format):
    # The original GPT-2 pytorch_model.bin: no "transformer." prefix, the causal mask stored
    # as h.N.attn.bias and h.N.attn.masked_bias, no lm_head.weight. It was written before
    # PyTorch 1.6 switched torch.save to zip archives: a bare pickle (zip_format=False).
    state = {k.removeprefix("transformer."): v for k, v in hf_state.items() if k != "lm_head.weight"}
    n = HF_CONFIG["n_positions"]
    for i in range(HF_CONFIG["n_layer"]):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
    assert (tmp_path / "pytorch_model.bin").read_bytes()[:2] == (b"PK" if zip_format else b"\x80\x02")
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict))
    ours = load_gpt2(tmp_path)
    torch.testing.assert_close(our_logits(ours), hf_logits(hf_model), atol=1e-4, rtol=0)


def test_loading_builds_without_drawing(safetensors_dir):
    # load_gpt2 builds with chapter 8's meta_model: on the meta device, with torch.nn.init's
    # functions, in-place draws and torch.triu (the masks) skipped: no random numbers, and
    # none of the slow first-time set-up a meta normal_() or triu() costs (each imports
    # torch._dynamo). Checked in a fresh process, where nothing was imported yet.
    code = (
        "import sys, torch\n"
        "from llm_from_scratch.pretrained import load_gpt2\n"
        "state = torch.get_rng_state()\n"
        f"model = load_gpt2({str(safetensors_dir)!r})\n"
        "assert torch.equal(state, torch.get_rng_state()), 'random numbers were drawn'\n"
        "assert not any(p.is_meta for p in model.parameters())\n"
        "print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]  # nor sympy, which empty_like imports


# --- dtype and device --------------------------------------------------------------------


def parameter_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())  # tied: once


def test_bfloat16_load_holds_half_the_bytes_and_the_float32_values_rounded(safetensors_dir):
    full = load_gpt2(safetensors_dir)
    half = load_gpt2(safetensors_dir, dtype=torch.bfloat16)
    assert {t.dtype for t in full.state_dict().values()} == {torch.float32}  # the default
    # Every parameter in bfloat16, and the masks too: chosen so that the model is what
    # load_gpt2(path).to(torch.bfloat16) gives (Module.to converts floating buffers); their
    # 0s and 1s are exact in bfloat16, and forward reads only mask.bool().
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert {b.dtype for b in half.buffers()} == {torch.bfloat16}
    assert {t.device for t in half.state_dict().values()} == {torch.device("cpu")}
    assert half.out_head.weight is half.tok_emb.weight  # still tied: one tensor
    assert 2 * parameter_bytes(half) == parameter_bytes(full) > 0
    # Converted straight from the checkpoint, each value is its float32 value rounded to
    # bfloat16, exactly as a float32 load cast afterwards: nothing is lost on the way.
    rounded = load_gpt2(safetensors_dir).to(torch.bfloat16)
    assert half.state_dict().keys() == rounded.state_dict().keys()
    for name, tensor in half.state_dict().items():
        assert torch.equal(tensor, rounded.state_dict()[name]), name
    assert torch.equal(our_logits(half), our_logits(rounded))


def test_bfloat16_logits_and_greedy_tokens_follow_float32(safetensors_dir):
    full = load_gpt2(safetensors_dir)
    half = load_gpt2(safetensors_dir, dtype=torch.bfloat16)
    expected = generate(full, PROMPT, 8)  # float32's greedy continuation
    got = our_logits(half, expected).float()
    assert our_logits(half).dtype == torch.bfloat16
    want = our_logits(full, expected)
    # bfloat16 keeps 8 significant bits: one rounding errs by at most 2**-9 relative, and
    # a forward pass compounds dozens of them, amplified by this checkpoint's large random
    # weights: the logits err by a few percent of their scale (here 9 units of 2**-8; at
    # most 16 allowed). A weight loaded wrongly would be off by the whole scale.
    scale = want.abs().max()
    error = (got - want).abs().max()
    assert 0 < error <= 2**-4 * scale
    # Where float32's choice leads by more than twice that error, bfloat16 makes it too.
    start = PROMPT.shape[1] - 1
    top2 = want[0, start:-1].topk(2, dim=-1)
    clear = top2.values[:, 0] - top2.values[:, 1] > 2 * error
    assert clear.sum() >= 4  # 4 of the 8 steps here
    chosen = got[0, start:-1].argmax(dim=-1)
    assert torch.equal(chosen[clear], top2.indices[clear, 0])
    # Here every step goes the same way (the close calls too), so the whole greedy
    # continuation is float32's; generate runs in bfloat16 unchanged.
    assert torch.equal(generate(half, PROMPT, 8), expected)


def test_float16_and_an_explicit_cpu_device(safetensors_dir):
    model = load_gpt2(safetensors_dir, dtype=torch.float16, device=torch.device("cpu"))
    assert {t.dtype for t in model.state_dict().values()} == {torch.float16}
    model = load_gpt2(safetensors_dir, device="cpu", drop_rate=0.0)  # overrides still apply
    assert model.cfg.drop_rate == 0.0 and model.tok_emb.weight.dtype == torch.float32


def test_convert_to_bfloat16_converts_the_tied_head_once(hf_state):
    from llm_from_scratch.model import GPTConfig
    from llm_from_scratch.pretrained import convert_gpt2_state_dict

    cfg = GPTConfig(vocab_size=101, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    qkv_bias=True, tie_weights=True)
    ours = convert_gpt2_state_dict(hf_state, cfg, dtype=torch.bfloat16)
    assert {t.dtype for t in ours.values()} == {torch.bfloat16}
    assert all(t.is_contiguous() for t in ours.values())
    assert ours["out_head.weight"] is ours["tok_emb.weight"]


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(dtype="bfloat16"), TypeError, "dtype must be a torch.dtype"),
    (dict(dtype=2), TypeError, "dtype must be a torch.dtype"),
    (dict(dtype=torch.int8), ValueError, "dtype must be a floating-point dtype"),
    (dict(dtype=torch.complex64), ValueError, "dtype must be a floating-point dtype"),
    (dict(device=1.5), TypeError, "device must be a str or torch.device"),
    (dict(device=True), TypeError, "device must be a str or torch.device"),
    (dict(device="gpu"), ValueError, "device 'gpu' cannot hold the model"),
    (dict(device="cuda:x"), ValueError, "device 'cuda:x' cannot hold the model"),
    (dict(device="meta"), ValueError, "a meta tensor holds no values"),
])
def test_a_wrong_dtype_or_device_is_named(safetensors_dir, kwargs, error, words):
    with pytest.raises(error, match=re.escape(words)):
        load_gpt2(safetensors_dir, **kwargs)


def test_a_device_this_machine_lacks_is_a_value_error(safetensors_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"^device 'cuda' cannot hold the model: \S"):
        load_gpt2(safetensors_dir, device="cuda")


def test_untied_checkpoint_keeps_its_own_head(tmp_path):
    hf = random_gpt2(seed=7, tie_word_embeddings=False)
    assert not torch.equal(hf.lm_head.weight, hf.transformer.wte.weight)
    hf.save_pretrained(tmp_path)
    ours = load_gpt2(tmp_path)
    assert not ours.cfg.tie_weights
    assert ours.out_head.weight is not ours.tok_emb.weight
    torch.testing.assert_close(our_logits(ours), hf_logits(hf), atol=1e-4, rtol=0)
    assert torch.equal(generate(ours, PROMPT, 8), hf_greedy(hf))


def test_layer_norm_epsilon_is_taken_from_the_config(tmp_path):
    hf = random_gpt2(seed=9, layer_norm_epsilon=1e-2)  # large enough to change the logits
    hf.save_pretrained(tmp_path)
    ours = load_gpt2(tmp_path)
    assert ours.final_norm.eps == pytest.approx(1e-2)
    torch.testing.assert_close(our_logits(ours), hf_logits(hf), atol=1e-4, rtol=0)


def test_save_gpt2_is_readable_by_transformers(tmp_path):
    torch.manual_seed(123)
    from llm_from_scratch.model import GPTConfig

    for tied, qkv_bias in ((True, True), (False, False)):
        cfg = GPTConfig(vocab_size=101, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                        qkv_bias=qkv_bias, tie_weights=tied)
        ours = GPTModel(cfg).eval()
        with torch.no_grad():  # make biases and norms non-trivial too
            for p in ours.parameters():
                p.add_(0.1 * torch.randn_like(p))
        directory = save_gpt2(ours, tmp_path / f"tied={tied}")
        hf = transformers.GPT2LMHeadModel.from_pretrained(directory).eval()
        torch.testing.assert_close(hf_logits(hf), our_logits(ours), atol=1e-4, rtol=0)
        back = load_gpt2(directory)
        torch.testing.assert_close(our_logits(back), our_logits(ours), atol=0, rtol=0)


# --- checkpoints that do not fit ---------------------------------------------


def test_missing_and_unexpected_keys_are_named(hf_state, hf_config_dict, tmp_path):
    state = dict(hf_state)
    del state["transformer.h.1.mlp.c_fc.bias"]
    state["transformer.h.1.attn.extra.weight"] = torch.zeros(3)
    write_state(tmp_path, state, hf_config_dict)
    with pytest.raises(CheckpointError) as err:
        load_gpt2(tmp_path)
    message = str(err.value)
    assert "missing keys: h.1.mlp.c_fc.bias" in message
    assert "unexpected keys: transformer.h.1.attn.extra.weight" in message
    assert "model.safetensors" in message


def test_a_deeper_checkpoint_reports_the_extra_blocks(hf_state, hf_config_dict, tmp_path):
    write_state(tmp_path, hf_state, {**hf_config_dict, "n_layer": 1})
    with pytest.raises(CheckpointError, match=r"unexpected keys: transformer\.h\.1\.") as err:
        load_gpt2(tmp_path)
    assert "n_layers=1" in str(err.value)


def test_wrong_shape_names_the_key_and_both_shapes(hf_state, hf_config_dict, tmp_path):
    state = {**hf_state, "transformer.wpe.weight": torch.zeros(16, 64)}
    write_state(tmp_path, state, hf_config_dict)
    with pytest.raises(CheckpointError) as err:
        load_gpt2(tmp_path)
    message = str(err.value)
    assert "transformer.wpe.weight" in message
    assert "(16, 64)" in message and "(32, 64)" in message


def test_an_override_that_changes_a_shape_is_a_shape_error(safetensors_dir):
    with pytest.raises(CheckpointError, match=r"wte\.weight has shape \(101, 64\).*\(200, 64\)"):
        load_gpt2(safetensors_dir, vocab_size=200)


def test_tied_config_with_a_different_head_is_refused(hf_state, hf_config_dict, tmp_path):
    state = {**hf_state, "lm_head.weight": hf_state["lm_head.weight"] + 1.0}
    write_state(tmp_path, state, hf_config_dict)
    with pytest.raises(CheckpointError, match="lm_head.weight differs from wte.weight"):
        load_gpt2(tmp_path)
    untied = load_gpt2(tmp_path, tie_weights=False)  # the suggested fix works
    assert torch.equal(untied.out_head.weight, state["lm_head.weight"])


def test_truncated_safetensors_file_names_the_file(safetensors_dir, tmp_path):
    data = (safetensors_dir / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "config.json").write_bytes((safetensors_dir / "config.json").read_bytes())
    with pytest.raises(CheckpointError) as err:
        load_gpt2(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "model.safetensors") in message
    assert "truncated or corrupt" in message


def test_truncated_bin_file_names_the_file(hf_state, hf_config_dict, tmp_path):
    torch.save(hf_state, tmp_path / "full.bin")
    data = (tmp_path / "full.bin").read_bytes()
    (tmp_path / "full.bin").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(data[: len(data) // 3])
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict))
    with pytest.raises(CheckpointError, match="pytorch_model.bin: cannot read it as a PyTorch checkpoint"):
        load_gpt2(tmp_path)


def test_directory_without_weights_or_config(hf_config_dict, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict))
    with pytest.raises(FileNotFoundError, match="no model.safetensors or pytorch_model.bin"):
        load_gpt2(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_gpt2(tmp_path)


def test_config_of_a_variant_we_do_not_implement(hf_state, hf_config_dict, tmp_path):
    write_state(tmp_path, hf_state, {**hf_config_dict, "activation_function": "relu"})
    with pytest.raises(CheckpointError, match="activation_function='relu'"):
        load_gpt2(tmp_path)


def test_missing_directory_that_is_not_a_hub_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        load_gpt2(tmp_path / "does-not-exist")


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "openai-community/gpt2-xl", "gpt2-small"])
def test_hub_name_without_huggingface_hub(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # so that no local directory of that name exists
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(FileNotFoundError) as err:
        load_gpt2(name)
    message = str(err.value)
    assert "is not a local directory" in message
    assert "huggingface_hub" in message and "snapshot_download" in message


def test_hub_name_offline_gives_a_clear_message(monkeypatch, tmp_path):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.chdir(tmp_path)
    calls = []

    def no_network(repo, **kwargs):  # never touch the network from the tests
        calls.append(repo)
        raise OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    with pytest.raises(FileNotFoundError) as err:
        load_gpt2("gpt2-medium")
    assert calls == ["openai-community/gpt2-medium"]
    message = str(err.value)
    assert "failed (OSError)" in message and "offline" in message
    assert "snapshot_download('openai-community/gpt2-medium'" in message


def test_expected_shapes_cover_exactly_what_transformers_saves(hf_state):
    from llm_from_scratch.model import GPTConfig

    cfg = GPTConfig(vocab_size=101, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    qkv_bias=True, tie_weights=True)
    shapes = gpt2_checkpoint_shapes(cfg)
    saved = {k.removeprefix("transformer."): tuple(v.shape) for k, v in hf_state.items()}
    assert saved == shapes


def test_a_config_file_with_a_mistyped_field_is_a_checkpoint_error():
    # The file's contents are a value: a float width is a CheckpointError (a ValueError)
    # naming the file and the field, which the command line reports as such.
    from llm_from_scratch.pretrained import CheckpointError, config_from_hf

    hf = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768.0, "n_head": 12, "n_layer": 12}
    with pytest.raises(CheckpointError, match=r"cfg.json: GPTConfig.emb_dim must be int, got 768.0"):
        config_from_hf(hf, source="cfg.json")
