"""Turn a chapter page into a Jupyter notebook: prose as Markdown cells, Python blocks as
code cells, shown outputs dropped (running the notebook prints them again).

Blocks tangled into a `__main__.py` are a program's entry point: in a notebook, whose
namespace is also called `__main__`, they would run the command line on the kernel's own
arguments. They are shown as code in Markdown instead; the page's examples import them.
"""

from __future__ import annotations

import nbformat

from tangler.core import CODEBLOCKS_COMMENT, EXPECTED_OUTPUT, FENCE, MARKER


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

    lines = markdown.splitlines()
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
