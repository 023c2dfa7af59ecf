"""Rewrite the expected-output blocks of pages with what their code prints now.

    python tools/refresh_outputs.py docs/chapters/09-text-generation.md [more pages]

For when a change to the package legitimately changes what pages print (a new
initialisation draws different random numbers, say). It runs each Python block, or cont
chain, that has an expected output exactly as pytest-codeblocks does (pytest_codeblocks
extracts the blocks; each runs with fresh globals, stdout captured), and replaces the
expected output where it differs. A block that raises stops the tool and changes nothing.
Blocks marked skip or xfail are left alone. Review the diff: the prose around an output
may quote its numbers, and this tool cannot see that.
"""

import contextlib
import io
import sys
from pathlib import Path

from pytest_codeblocks import extract_from_file

MARKER = "<!--pytest-codeblocks:expected-output-->"


def printed_by(code: str) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(code, {"__MODULE__": "__main__"})
    return buffer.getvalue()


def refresh(path: Path) -> int:
    """Rewrite the page's stale expected outputs; return how many changed."""
    lines = path.read_text().splitlines(keepends=True)
    replacements = []  # (first line, end line, new text) of each stale output's content
    for block in extract_from_file(path):
        if block.syntax != "python" or block.expected_output is None:
            continue
        if any("skip" in mark or "xfail" in mark for mark in block.marks):
            continue
        output = printed_by(block.code)
        if output == block.expected_output:
            continue
        # The first marker after the block's first line is its chain's output (one per chain).
        marker = next(i for i in range(block.lineno, len(lines)) if lines[i].strip() == MARKER)
        indent = lines[marker][: len(lines[marker]) - len(lines[marker].lstrip())]  # in a tab, say
        start = marker + 2  # the line after the opening fence
        end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("```"))
        if "".join(line.removeprefix(indent) for line in lines[start:end]) != block.expected_output:
            sys.exit(f"{path}:{marker + 1}: cannot find the output of the block at line {block.lineno}")
        replacements.append((start, end, "".join(indent + line for line in output.splitlines(keepends=True))))
    for start, end, output in reversed(replacements):
        lines[start:end] = [output]
    path.write_text("".join(lines))
    return len(replacements)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {refresh(Path(name))} output(s) rewritten")
