"""Loading checkpoints safely (chapter 11, "Reading the files"): a hostile or broken file is refused, by name.

A `pytorch_model.bin` is a pickle, and unpickling can call any function the file names.
The payloads below would create a marker file if they ever ran; loading must refuse them
*without running them*, and a control test proves that each payload is live (plain
unpickling does create the marker), so the refusal tests can fail. Then every way a
checkpoint can be damaged or mismatched must raise an error that says what is wrong:
truncated, random, empty, not a dict, another architecture, missing or unexpected keys.
None of these messages may repeat PyTorch's advice to retry with weights_only=False.
"""

import builtins
import json
import os
import pickle
import random
import re
import shlex

import pytest
import torch
from safetensors.torch import load_file, save_file

from llm_from_scratch.model import GPTConfig, GPTModel
from llm_from_scratch.pretrained import CheckpointError, gpt2_checkpoint_shapes, load_gpt2, save_gpt2

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
    model = load_gpt2(good)
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
# The global each payload asks for, as PyTorch names it (os.system lives in posix or nt).
GLOBALS = {"os.system": f"{os.system.__module__}.system", "builtins.exec": "exec"}
# torch.save writes a zip holding a protocol-2 pickle; old checkpoints were a bare pickle
# of protocol 2; pickle.dump's default today is protocol 5.
WRITERS = ["torch.save", "pickle protocol 2", "pickle protocol 5"]


def write_hostile(path, payload, writer, tensors):
    """A state dict that looks right, with one entry replaced by the payload. The payload
    comes first, so that it is the first global an unpickler meets."""
    state = {"transformer.wte.weight": payload}
    state |= {k: v for k, v in tensors.items() if k not in state}
    if writer == "torch.save":
        torch.save(state, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=int(writer[-1]))


def assert_no_torch_advice(message):
    """Our message, not PyTorch's: no advice to drop weights_only, no colour codes."""
    assert "will likely succeed" not in message and "Re-running" not in message
    assert "file an issue" not in message
    assert "\x1b" not in message


@pytest.mark.parametrize("writer", WRITERS)
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


@pytest.mark.parametrize("writer", ["torch.save", "pickle protocol 2"])
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path, good, tensors, payload, writer):
    marker = tmp_path / "pwned"
    directory = checkpoint_dir(tmp_path, good)
    write_hostile(directory / "pytorch_model.bin", PAYLOADS[payload](marker), writer, tensors)
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    message = str(err.value)
    assert not marker.exists(), "loading ran the payload"
    assert message.startswith(f"{directory / 'pytorch_model.bin'}: refused, because loading it would run code")
    assert f"it asks for the global {GLOBALS[payload]}," in message  # the function it refused to call
    assert "only plain tensors are accepted (torch.load with weights_only=True)" in message
    assert "Do not load it with weights_only=False unless you trust its source" in message
    assert_no_torch_advice(message)
    assert isinstance(err.value.__cause__, pickle.UnpicklingError)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_protocol_5_pickle_is_refused_before_it_reaches_its_global(tmp_path, good, tensors, payload):
    # PyTorch's unpickler stops at the first instruction torch.save never writes (FRAME),
    # before the global: it cannot say which global the file wanted, but refuses all the same.
    marker = tmp_path / "pwned"
    directory = checkpoint_dir(tmp_path, good)
    write_hostile(directory / "pytorch_model.bin", PAYLOADS[payload](marker), "pickle protocol 5", tensors)
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    message = str(err.value)
    assert not marker.exists(), "loading ran the payload"
    assert message.startswith(f"{directory / 'pytorch_model.bin'}: refused by torch.load with weights_only=True")
    assert "was not written by torch.save" in message and "a source you trust" in message
    assert_no_torch_advice(message)


def test_a_whole_model_pickled_is_refused_with_the_state_dict_advice(tmp_path, good):
    # The innocent cause of the same refusal: torch.save(model) instead of its state_dict().
    directory = checkpoint_dir(tmp_path, good)
    torch.manual_seed(0)
    torch.save(GPTModel(GPTConfig(**TINY)), directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    message = str(err.value)
    assert "refused, because loading it would run code" in message
    assert "it asks for the global llm_from_scratch.model.GPTModel," in message
    assert "save model.state_dict() instead" in message
    assert_no_torch_advice(message)  # torch's text for this case holds ANSI bold codes


def test_a_hostile_bin_beside_a_good_safetensors_is_never_opened(tmp_path, good, tensors):
    # model.safetensors wins when both exist, so the pickle is not even read.
    marker = tmp_path / "pwned"
    directory = checkpoint_dir(tmp_path, good)
    (directory / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    write_hostile(directory / "pytorch_model.bin", SystemPayload(marker), "torch.save", tensors)
    assert load_gpt2(directory).cfg.n_layers == 2
    assert not marker.exists()


# --- damaged files -------------------------------------------------------------------


def test_truncated_safetensors_is_named_and_called_truncated(tmp_path, good):
    data = (good / "model.safetensors").read_bytes()
    directory = checkpoint_dir(tmp_path, good)
    for cut in (len(data) // 2, 100, 7):  # mid-data, mid-header, inside the length prefix
        (directory / "model.safetensors").write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as err:
            load_gpt2(directory)
        message = str(err.value)
        assert str(directory / "model.safetensors") in message
        assert "cannot read it as a safetensors checkpoint" in message
        assert "truncated or corrupt" in message and "fetch it again" in message


RANDOM_BYTES = b"\x13" + random.Random(0).randbytes(4095)  # starts like neither a zip nor a pickle
HTML = b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>"


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors"])
def test_an_empty_weights_file_is_called_empty(tmp_path, good, name):
    directory = checkpoint_dir(tmp_path, good)
    (directory / name).write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    assert str(err.value) == f"{directory / name} is empty (0 bytes): the download or copy did not finish; fetch it again"


@pytest.mark.parametrize("content", ["random", "html"])
def test_a_bin_that_is_not_a_pytorch_file_says_so(tmp_path, good, content):
    directory = checkpoint_dir(tmp_path, good)
    (directory / "pytorch_model.bin").write_bytes({"random": RANDOM_BYTES, "html": HTML}[content])
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    message = str(err.value)
    assert message.startswith(f"{directory / 'pytorch_model.bin'} is not a PyTorch checkpoint "
                              "(it does not start like one")
    assert message.endswith("; fetch it again")
    if content == "html":  # text is shown, so an error page is recognised at a glance
        assert f"but with the text {HTML[:32].decode()!r})" in message
    else:  # bytes are not
        assert "but with the text" not in message
    assert_no_torch_advice(message)
    assert "Unsupported operand" not in message


@pytest.mark.parametrize("content", ["random", "html"])
def test_a_safetensors_file_that_is_not_one_is_named(tmp_path, good, content):
    directory = checkpoint_dir(tmp_path, good)
    (directory / "model.safetensors").write_bytes({"random": RANDOM_BYTES, "html": HTML}[content])
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    message = str(err.value)
    assert message.startswith(f"{directory / 'model.safetensors'}: cannot read it as a safetensors checkpoint")
    assert "fetch it again" in message


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_truncated_bin_is_called_truncated_not_foreign(tmp_path, good, tensors, zip_format):
    # A cut-off file still starts like a PyTorch file: it is damaged, not something else.
    directory = checkpoint_dir(tmp_path, good)
    torch.save(dict(tensors), tmp_path / "full.bin", _use_new_zipfile_serialization=zip_format)
    data = (tmp_path / "full.bin").read_bytes()
    for cut in (len(data) // 2, 60):
        (directory / "pytorch_model.bin").write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as err:
            load_gpt2(directory)
        message = str(err.value)
        assert message.startswith(f"{directory / 'pytorch_model.bin'}: cannot read it as a PyTorch checkpoint (")
        assert message.endswith("); the file may be truncated or corrupt, fetch it again")
        assert "internal miniz error" not in message  # only the first sentence of torch's reason
        assert_no_torch_advice(message)


@pytest.mark.parametrize("content", [[torch.zeros(2)], {"wte.weight": 3}, torch.zeros(3), "weights"])
def test_a_pickle_of_something_else_than_a_dict_of_tensors(tmp_path, good, content):
    directory = checkpoint_dir(tmp_path, good)
    torch.save(content, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin: expected a dictionary of tensors"):
        load_gpt2(directory)


# --- checkpoints that do not fit ------------------------------------------------------


def save_tensors(directory, state):
    save_file({k: v.contiguous() for k, v in state.items()}, directory / "model.safetensors")


def test_weights_of_another_width_list_eight_shapes_and_count_the_rest(tmp_path, good, tensors):
    torch.manual_seed(0)
    wider = save_gpt2(GPTModel(GPTConfig(**{**TINY, "emb_dim": 64})), tmp_path / "wider")
    directory = checkpoint_dir(tmp_path, good)  # config.json says emb_dim 32
    (directory / "model.safetensors").write_bytes((wider / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    message = str(err.value)
    assert "does not fit a GPT-2 with vocab_size=101, context_length=16, emb_dim=32" in message
    named = re.findall(r"(\S+) has shape (\(.*?\)) in the checkpoint, the model needs (\(.*?\))", message)
    assert len(named) == 8  # every tensor is wrong: eight are named, with both shapes
    wide, needed = load_file(wider / "model.safetensors"), gpt2_checkpoint_shapes(GPTConfig(**TINY, qkv_bias=True))
    for key, in_file, in_model in named:
        assert in_file == str(tuple(wide[key].shape))
        assert in_model == str(needed[key.removeprefix("transformer.")])
    assert message.endswith(f"; ... and {len(tensors) - 8} more")


def test_weights_of_another_depth_name_the_extra_blocks(tmp_path, good):
    torch.manual_seed(0)
    deeper = save_gpt2(GPTModel(GPTConfig(**{**TINY, "n_layers": 3})), tmp_path / "deeper")
    directory = checkpoint_dir(tmp_path, good)  # config.json says 2 layers
    (directory / "model.safetensors").write_bytes((deeper / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
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
        load_gpt2(directory)
    message = str(err.value)
    assert "missing keys: h.0.ln_1.bias, h.1.attn.c_proj.weight" in message
    assert "unexpected keys:" in message
    assert "transformer.h.0.attn.rotary.weight" in message and "extra_head.weight" in message


def test_many_missing_keys_are_summarised(tmp_path, good, tensors):
    directory = checkpoint_dir(tmp_path, good)
    save_tensors(directory, {"transformer.wte.weight": torch.zeros(101, 32)})
    with pytest.raises(CheckpointError) as err:
        load_gpt2(directory)
    message = str(err.value)
    assert "missing keys: wpe.weight, h.0.ln_1.weight" in message
    # All but wte (lm_head may be absent: it is tied) are missing: eight named, then a count.
    assert message.endswith(f", ... and {len(tensors) - 2 - 8} more")
    assert message.split("missing keys: ")[1].count(",") == 8


def test_an_empty_dict_of_tensors_lists_what_is_missing(tmp_path, good):
    directory = checkpoint_dir(tmp_path, good)
    torch.save({}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="missing keys: wte.weight, wpe.weight"):
        load_gpt2(directory)


def test_a_config_of_another_architecture_is_refused(tmp_path, good):
    directory = checkpoint_dir(tmp_path, good)
    (directory / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match="model_type is 'llama', not 'gpt2'"):
        load_gpt2(directory)
    (directory / "config.json").write_text('{"n_embd": 32,')
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_gpt2(directory)
