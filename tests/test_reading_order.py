"""The package reads in the order the book teaches it (issue 12, DESIGN.md):

- in every generated module, no top-level definition uses a name of that module that
  is defined further down (so `model.py` reads top to bottom);
- the code blocks of chapters 1-9 import from the package only names that their own
  chapter or an earlier one defines (later chapters build on earlier ones, never the
  other way round).
"""

import ast
from pathlib import Path

import pytest

from tangler.core import read_nav, read_page, scan_fences

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "llm_from_scratch"
TEACHING_CHAPTERS = 9


def top_level_names(node) -> set[str]:
    """Names a top-level statement defines."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def names_used_before_definition(source: str) -> list[str]:
    tree = ast.parse(source)
    defined_at = {}
    for index, node in enumerate(tree.body):
        for name in top_level_names(node):
            defined_at.setdefault(name, index)
    problems = []
    for index, node in enumerate(tree.body):
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        for name in sorted(used):
            if defined_at.get(name, -1) > index:
                problems.append(f"line {node.lineno}: uses {name}, defined further down")
    return problems


@pytest.mark.parametrize("module", sorted(p.name for p in PACKAGE.glob("*.py")))
def test_every_module_reads_top_to_bottom(module):
    assert names_used_before_definition((PACKAGE / module).read_text(encoding="utf-8")) == []


def test_the_check_sees_a_name_used_before_its_definition():
    assert names_used_before_definition("def f():\n    return g()\n\ndef g():\n    return 1\n")
    assert not names_used_before_definition("def g():\n    return 1\n\ndef f():\n    return g()\n")


# The one deliberate exception, a hand-off at call time to what a later chapter teaches:
# generate(..., use_cache=True) (chapter 9) to chapter 12's KV cache.
HAND_OFFS = {("09-text-generation.md", "CachedLogits")}


def package_imports(code: str):
    """(module, name) of every `from llm_from_scratch.<module> import <name>`, at any depth."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llm_from_scratch"):
            yield from ((node.module, alias.name) for alias in node.names)


def test_teaching_chapters_import_only_from_themselves_and_earlier_chapters():
    _, pages = read_nav(ROOT)
    pages = [p for p in pages if p.parent.name == "chapters"]
    defined_in = {}  # name -> index of the chapter whose tangled blocks define it
    for index, page in enumerate(pages):
        for block in read_page(page, ROOT):
            for node in ast.parse(block.code).body:
                for name in top_level_names(node):
                    defined_in.setdefault(name, index)
    problems = []
    for index, page in enumerate(pages[:TEACHING_CHAPTERS]):
        text = page.read_text(encoding="utf-8")
        for fence in scan_fences(text, str(page)):
            if fence.info.strip() != "python":
                continue
            for _, name in package_imports(fence.code):
                if defined_in.get(name, -1) > index and (page.name, name) not in HAND_OFFS:
                    later = pages[defined_in[name]].name
                    problems.append(f"{page.name}:{fence.line}: imports {name} from {later}")
    assert problems == []
