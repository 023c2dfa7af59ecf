"""Turn a chapter page into a Jupyter notebook: prose as Markdown cells, Python blocks as
code cells, shown outputs dropped (running the notebook prints them again).

Blocks tangled into a `__main__.py` are a program's entry point: in a notebook, whose
namespace is also called `__main__`, they would run the command line on the kernel's own
arguments. They are shown as code in Markdown instead; the page's examples import them.
"""

from __future__ import annotations

import re

import nbformat

from tangler.core import CODEBLOCKS_COMMENT, EXPECTED_OUTPUT, FENCE, MARKER


# An admonition (`!!! note`, `??? question "Check yourself"`) or a content tab (`=== "A"`).
BOX = re.compile(r'^(?P<indent> *)(?:!!!|\?\?\?\+?|===) *(?P<kind>[\w-]*)(?: *"(?P<title>[^"]*)")? *$')


def flatten_boxes(lines: list[str]) -> list[str]:
    """Jupyter knows no admonitions or tabs: each opener becomes a bold title, and its body
    loses the indentation that Markdown would otherwise show as a code block."""
    out, bodies = [], []  # bodies: the indentation of each open box's body
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        if line.strip():
            while bodies and indent < bodies[-1]:
                bodies.pop()  # a line left of a body's edge closes that box
        cut = min(bodies[-1] if bodies else 0, indent) if line.strip() else 0
        box = BOX.match(line)
        if box:
            title = box["title"] if box["title"] is not None else box["kind"].capitalize()
            out.extend([f"**{title}**", ""] if title else [""])
            bodies.append(len(box["indent"]) + 4)
        else:
            out.append(line[cut:])
    return out


def page_to_notebook(markdown: str, source: str, url: str = "") -> nbformat.NotebookNode:
    """`source` is the page's path in the repository, named in the first cell."""
    cells = []
    prose: list[str] = []
    drop_next_fence = False
    entry_point = False  # the next fence is tangled into a __main__.py

    def flush_prose():
        text = "\n".join(prose).strip("\n")
        if text.strip():
            cells.append(nbformat.v4.new_markdown_cell(text))
        prose.clear()

    lines = flatten_boxes(markdown.splitlines())
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence is None:
            marker = MARKER.match(line)
            if EXPECTED_OUTPUT.match(line):
                drop_next_fence = True
            elif marker:
                entry_point = marker["target"].endswith("/__main__.py")
            elif not CODEBLOCKS_COMMENT.match(line):
                prose.append(line)
            i += 1
            continue
        indent, ticks, info = fence["indent"], fence["fence"], fence["info"].strip()
        body = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(ticks) and set(lines[i].strip()) == {ticks[0]}):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        if drop_next_fence:
            drop_next_fence = False
        elif info == "python" and not entry_point:
            flush_prose()
            cells.append(nbformat.v4.new_code_cell("\n".join(body).strip("\n")))
        else:
            prose.extend([f"{ticks}{info}", *body, ticks])
        entry_point = False
    flush_prose()
    where = f"[the site]({url})" if url else "the site"
    intro = (
        f"*Generated from `{source}`; read it on {where}.* Run it in an environment with the "
        "package installed (`pip install -e .` in a clone of the project)."
    )
    cells.insert(0, nbformat.v4.new_markdown_cell(intro))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook
