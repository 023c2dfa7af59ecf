"""The GPT-2 tokenizer works with no network and an empty tiktoken cache."""

import os
import subprocess
import sys
import textwrap


def test_encodes_with_no_network_and_an_empty_cache(tmp_path):
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    script = textwrap.dedent("""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network access attempted")

        socket.socket.connect = refuse            # any download would fail loudly
        socket.create_connection = refuse

        from llm_from_scratch.tokenizer import get_tokenizer
        print(get_tokenizer().encode("Hello, I am"))
    """)
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache), DATA_GYM_CACHE_DIR=str(cache))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[15496, 11, 314, 716]"
    assert list(cache.iterdir()) == []  # nothing was fetched or cached
