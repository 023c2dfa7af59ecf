"""The API reference, made from the pages: every public name the pages tangle into the
package, under the chapter that defines it, as mkdocstrings `:::` entries.

The reference page holds one line, REFERENCE_MARKER; the plugin replaces it with what
`reference_markdown` returns while the site builds. So the reference cannot miss a name
or send a reader to the wrong chapter: both come from the same blocks as the package.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from tangler.core import read_nav, read_page

REFERENCE_MARKER = "<!-- api-reference -->"


def _defined_names(code: str) -> list[str]:
    """Top-level names a block defines: functions, classes and assigned constants."""
    names = []
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def public_names(root: Path) -> list[tuple[Path, str, str]]:
    """(page, module, name) of every public name of the package, in reading order.

    Public: defined at the top level of a tangled block, not starting with "_", in a
    module that is not the command line (`__main__`).
    """
    _, pages = read_nav(root)
    found, seen = [], set()
    for page in pages:
        if page.suffix != ".md" or not page.exists():
            continue
        for block in read_page(page, root):
            module = "llm_from_scratch." + Path(block.target).stem
            if Path(block.target).stem.startswith("__"):
                continue
            for name in _defined_names(block.code):
                if not name.startswith("_") and (module, name) not in seen:
                    seen.add((module, name))
                    found.append((page, module, name))
    return found


def _title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem


def reference_markdown(root: Path, reference_page: Path) -> str:
    """A section per page, linked, with a mkdocstrings entry per name it defines."""
    parts = []
    current = None
    for page, module, name in public_names(root):
        if page != current:
            current = page
            link = os.path.relpath(page, reference_page.parent).replace(os.sep, "/")
            parts.append(f"## {_title(page)}\n\nBuilt in [{_title(page)}]({link}).\n")
        parts.append(f"::: {module}.{name}\n")
    return "\n".join(parts)
