"""The GPT-2 tokenizer works with no network and an empty tiktoken cache."""

import sys
import textwrap


SCRIPT = textwrap.dedent("""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    socket.socket.connect = refuse            # any download would fail loudly
    socket.create_connection = refuse

    from llm_from_scratch.tokenizer import get_tokenizer
    print(get_tokenizer().encode("Hello, I am"))
""")


def background_commands(folder):
    """A fresh process with an empty tiktoken cache, started when the tests are collected
    (conftest.py), to run in the background while other tests run."""
    cache = folder / "tiktoken-cache"
    cache.mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "DATA_GYM_CACHE_DIR": str(cache)}
    return {"offline": ([sys.executable, "-c", SCRIPT], env)}


def test_encodes_with_no_network_and_an_empty_cache(commands):
    results, folder = commands
    returncode, out, err = results["offline"]
    cache = folder / "tiktoken-cache"
    assert returncode == 0, err
    assert out.strip() == "[15496, 11, 314, 716]"
    assert list(cache.iterdir()) == []  # nothing was fetched or cached
