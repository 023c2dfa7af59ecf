"""Loading checkpoints safely (chapter 10): a hostile or broken file is refused, by name.

A `pytorch_model.bin` is a pickle, and unpickling can call any function the file names.
The payloads below would create a marker file if they ever ran; loading must refuse them
*without running them*, and a control test proves that each payload is live (plain
unpickling does create the marker), so the refusal tests can fail. Then every way a
checkpoint can be damaged or mismatched must raise an error that says what is wrong:
truncated, random, empty, not a dict, another architecture, missing or unexpected keys.
"""

import builtins
import json
import os
import pickle
import shlex

import pytest
import torch
from safetensors.torch import load_file, save_file

from llm_from_scratch.model import GPTConfig, GPTModel
from llm_from_scratch.pretrained import CheckpointError, save_gpt2

TINY = dict(vocab_size=101, context_length=16, emb_dim=32, n_heads=4, n_layers=2)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A tiny GPT-2 checkpoint (config.json + model.safetensors) that loads."""
    torch.manual_seed(123)
    return save_gpt2(GPTModel(GPTConfig(**TINY)).eval(), tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def tensors(good):
    return load_file(good / "model.safetensors")


def checkpoint_dir(tmp_path, good, name="ckpt"):
    """A folder holding the good checkpoint's config.json and no weights yet."""
    directory = tmp_path / name
    directory.mkdir()
    (directory / "config.json").write_bytes((good / "config.json").read_bytes())
    return directory


def test_the_good_checkpoint_loads(good, tensors):
    # The control for everything below: the failures come from the damage, not the setup.
    model = GPTModel.from_pretrained(good)
    assert model.cfg.emb_dim == 32 and not model.training
    # wte, wpe, ln_f (2), 12 per block, and lm_head: TINY keeps the book's untied head.
    assert len(tensors) == 2 + 2 + 2 * 12 + 1 and "lm_head.weight" in tensors


# --- hostile pickles ----------------------------------------------------------------


class SystemPayload:
    """Unpickling calls os.system("touch <marker>")."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class ExecPayload:
    """Unpickling calls builtins.exec(...) on code that writes the marker."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


PAYLOADS = {"os.system": SystemPayload, "builtins.exec": ExecPayload}


def write_hostile(path, payload, writer, tensors):
    """A state dict that looks right, with one entry replaced by the payload."""
    state = dict(tensors)
    state["transformer.wte.weight"] = payload
    if writer == "torch.save":  # the zip format PyTorch writes today
        torch.save(state, path)
    else:  # a bare pickle, as very old checkpoints were
        with open(path, "wb") as f:
            pickle.dump(state, f)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_control_each_payload_really_runs_when_unpickled_unsafely(tmp_path, tensors, payload, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "pytorch_model.bin"
    write_hostile(path, PAYLOADS[payload](marker), writer, tensors)
    assert not marker.exists()
    if writer == "torch.save":
        torch.load(path, weights_only=False)  # what an unsafe loader would do
    else:
        with open(path, "rb") as f:
            pickle.load(f)
    assert marker.exists(), "the payload is not live, so the refusal tests below prove nothing"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path, good, tensors, payload, writer):
    marker = tmp_path / "pwned"
    directory = checkpoint_dir(tmp_path, good)
    write_hostile(directory / "pytorch_model.bin", PAYLOADS[payload](marker), writer, tensors)
    with pytest.raises(CheckpointError) as err:
        GPTModel.from_pretrained(directory)
    message = str(err.value)
    assert not marker.exists(), "loading ran the payload"
    assert str(directory / "pytorch_model.bin") in message
    assert "cannot read it as a PyTorch checkpoint" in message
    assert "weights_only" in message  # torch's reason, quoted
    if writer == "torch.save":  # it names the function it refused to call
        assert f"GLOBAL {os.system.__module__ + '.system' if payload == 'os.system' else 'exec'}" in message
    assert isinstance(err.value.__cause__, pickle.UnpicklingError)


def test_a_hostile_bin_beside_a_good_safetensors_is_never_opened(tmp_path, good, tensors):
    # model.safetensors wins when both exist, so the pickle is not even read.
    marker = tmp_path / "pwned"
    directory = checkpoint_dir(tmp_path, good)
    (directory / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    write_hostile(directory / "pytorch_model.bin", SystemPayload(marker), "torch.save", tensors)
    assert GPTModel.from_pretrained(directory).cfg.n_layers == 2
    assert not marker.exists()


# --- damaged files -------------------------------------------------------------------


def test_truncated_safetensors_is_named_and_called_truncated(tmp_path, good):
    data = (good / "model.safetensors").read_bytes()
    directory = checkpoint_dir(tmp_path, good)
    for cut in (len(data) // 2, 100, 7):  # mid-data, mid-header, inside the length prefix
        (directory / "model.safetensors").write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as err:
            GPTModel.from_pretrained(directory)
        message = str(err.value)
        assert str(directory / "model.safetensors") in message
        assert "cannot read it as a safetensors checkpoint" in message
        assert "truncated or corrupt" in message and "fetch it again" in message


@pytest.mark.parametrize("name, kind", [("pytorch_model.bin", "PyTorch"), ("model.safetensors", "safetensors")])
@pytest.mark.parametrize("content", ["random", "empty", "html"])
def test_random_empty_or_html_weights_file_is_named(tmp_path, good, name, kind, content):
    data = {"random": os.urandom(4096), "empty": b"",
            "html": b"<!DOCTYPE html><html><body>404 Not Found</body></html>"}[content]
    directory = checkpoint_dir(tmp_path, good)
    (directory / name).write_bytes(data)
    with pytest.raises(CheckpointError) as err:
        GPTModel.from_pretrained(directory)
    message = str(err.value)
    assert str(directory / name) in message
    assert f"cannot read it as a {kind} checkpoint" in message
    assert "fetch it again" in message


@pytest.mark.parametrize("content", [[torch.zeros(2)], {"wte.weight": 3}, torch.zeros(3), "weights"])
def test_a_pickle_of_something_else_than_a_dict_of_tensors(tmp_path, good, content):
    directory = checkpoint_dir(tmp_path, good)
    torch.save(content, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: expected a dictionary of tensors"):
        GPTModel.from_pretrained(directory)


# --- checkpoints that do not fit ------------------------------------------------------


def save_tensors(directory, state):
    save_file({k: v.contiguous() for k, v in state.items()}, directory / "model.safetensors")


def test_weights_of_another_width_list_each_key_and_both_shapes(tmp_path, good):
    torch.manual_seed(0)
    wider = save_gpt2(GPTModel(GPTConfig(**{**TINY, "emb_dim": 64})), tmp_path / "wider")
    directory = checkpoint_dir(tmp_path, good)  # config.json says emb_dim 32
    (directory / "model.safetensors").write_bytes((wider / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as err:
        GPTModel.from_pretrained(directory)
    message = str(err.value)
    assert "does not fit a GPT-2 with vocab_size=101, context_length=16, emb_dim=32" in message
    assert "transformer.wte.weight has shape (101, 64) in the checkpoint, the model needs (101, 32)" in message
    assert "transformer.h.1.mlp.c_fc.weight has shape (64, 256) in the checkpoint, the model needs (32, 128)" in message


def test_weights_of_another_depth_name_the_extra_blocks(tmp_path, good):
    torch.manual_seed(0)
    deeper = save_gpt2(GPTModel(GPTConfig(**{**TINY, "n_layers": 3})), tmp_path / "deeper")
    directory = checkpoint_dir(tmp_path, good)  # config.json says 2 layers
    (directory / "model.safetensors").write_bytes((deeper / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as err:
        GPTModel.from_pretrained(directory)
    message = str(err.value)
    assert "does not fit a GPT-2 with n_layers=2" in message
    assert "unexpected keys: transformer.h.2." in message
    assert "missing keys" not in message


def test_missing_and_unexpected_keys_are_both_listed(tmp_path, good, tensors):
    state = {k: v for k, v in tensors.items()
             if k not in ("transformer.h.0.ln_1.bias", "transformer.h.1.attn.c_proj.weight")}
    state["transformer.h.0.attn.rotary.weight"] = torch.zeros(4)
    state["extra_head.weight"] = torch.zeros(2, 2)
    directory = checkpoint_dir(tmp_path, good)
    save_tensors(directory, state)
    with pytest.raises(CheckpointError) as err:
        GPTModel.from_pretrained(directory)
    message = str(err.value)
    assert "missing keys: h.0.ln_1.bias, h.1.attn.c_proj.weight" in message
    assert "unexpected keys:" in message
    assert "transformer.h.0.attn.rotary.weight" in message and "extra_head.weight" in message


def test_many_missing_keys_are_summarised(tmp_path, good):
    directory = checkpoint_dir(tmp_path, good)
    save_tensors(directory, {"transformer.wte.weight": torch.zeros(101, 32)})
    with pytest.raises(CheckpointError) as err:
        GPTModel.from_pretrained(directory)
    message = str(err.value)
    assert "missing keys: wpe.weight, h.0.ln_1.weight" in message
    assert "more)" in message  # the list is cut, with a count of the rest


def test_an_empty_dict_of_tensors_lists_what_is_missing(tmp_path, good):
    directory = checkpoint_dir(tmp_path, good)
    torch.save({}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="missing keys: wte.weight, wpe.weight"):
        GPTModel.from_pretrained(directory)


def test_a_config_of_another_architecture_is_refused(tmp_path, good):
    directory = checkpoint_dir(tmp_path, good)
    (directory / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match="model_type is 'llama', not 'gpt2'"):
        GPTModel.from_pretrained(directory)
    (directory / "config.json").write_text('{"n_embd": 32,')
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        GPTModel.from_pretrained(directory)
