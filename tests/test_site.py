"""The site builds strictly, shows tangled blocks with their file, executes the labs, and
keeps formulas out of headings."""

import re
from pathlib import Path

import pytest


def test_configuration_page_titles_the_tangled_block(built_site):
    html = (built_site / "chapters/01-configuration/index.html").read_text()
    assert re.search(r'<span class="filename">src/llm_from_scratch/model.py</span>', html)
    assert re.search(r'<span class="filename">Output</span>', html)


def test_labs_are_executed_pages_with_outputs_and_figures(built_site):
    for lab in (Path(__file__).parents[1] / "docs" / "labs").glob("*.py"):
        html = (built_site / f"labs/{lab.stem}/index.html").read_text()
        assert "jp-OutputArea-output" in html, f"{lab.stem}: no executed outputs"
        assert re.search(r'<img[^>]+src="data:image/png', html), f"{lab.stem}: no figure"


def test_every_page_has_an_edit_button_to_its_source(built_site):
    """The source of truth is the page (a lab's is its .py), so the edit button opens it."""
    docs = Path(__file__).parents[1] / "docs"
    sources = [*docs.glob("*.md"), *docs.glob("chapters/*.md"), *docs.glob("labs/*.py")]
    missing = []
    for source in sources:
        rel = source.relative_to(docs)
        page = Path() if rel == Path("index.md") else rel.with_suffix("")
        html = (built_site / page / "index.html").read_text(encoding="utf-8")
        if not re.search(rf'<a href="https://[^"]+/edit/main/docs/{re.escape(rel.as_posix())}"', html):
            missing.append(rel.as_posix())
    assert missing == []


# A heading's text is also its entry in the table of contents and the navigation, where
# MathJax does not run: a formula there shows as raw TeX. Headings say it in words.
MATH = re.compile(r"\\\(|\\\[|\$\$|\$[^$\s](?:[^$]*[^$\s])?\$|\\begin\{")
FENCE = re.compile(r"^ *(`{3,}|~{3,})")


def _markdown_headings(text):
    """(line number, heading) of each ATX or setext heading outside code fences."""
    fence, previous = None, ""
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence:
            if match and line.strip() == match[1] and match[1].startswith(fence):
                fence = None
        elif match:
            fence = match[1]
        elif re.match(r" {0,3}#{1,6}(\s|$)", line):
            yield number, line.strip()
        elif re.fullmatch(r" {0,3}(=+|-+)\s*", line) and previous.strip() and not FENCE.match(previous):
            yield number - 1, previous.strip()
        previous = "" if fence else line


def _lab_headings(text):
    """(line number, heading) of each heading in a lab's Markdown cells (`# %% [markdown]`)."""
    in_markdown = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line
        elif in_markdown and re.match(r"# #{1,6} ", line):
            yield number, line[2:].strip()


def _headings_with_math(docs):
    found = []
    for page in sorted(docs.rglob("*.md")):
        found += [f"{page.relative_to(docs)}:{n}: {h}" for n, h in _markdown_headings(page.read_text(encoding="utf-8")) if MATH.search(h)]
    for lab in sorted(docs.glob("labs/*.py")):
        found += [f"{lab.relative_to(docs)}:{n}: {h}" for n, h in _lab_headings(lab.read_text(encoding="utf-8")) if MATH.search(h)]
    return found


def test_no_heading_holds_math():
    found = _headings_with_math(Path(__file__).parents[1] / "docs")
    if found:
        pytest.fail("headings with math (the table of contents shows them as raw TeX):\n" + "\n".join(found))


def test_the_heading_check_finds_math_in_every_kind_of_heading(tmp_path):
    (tmp_path / "labs").mkdir()
    (tmp_path / "page.md").write_text(
        "# Title\n## Why divide by \\(\\sqrt{d_k}\\)?\n```python\n# not a heading $x$\n```\n"
        "Why $\\varepsilon$\n---\n### Plain words, $5 or $ 6\n#### \\[x\\]\n",
        encoding="utf-8",
    )
    (tmp_path / "labs" / "lab.py").write_text(
        "# %% [markdown]\n# # Lab\n# ## What $\\varepsilon$ does\n\n# %%\n# ## $x$ in a comment\n",
        encoding="utf-8",
    )
    assert _headings_with_math(tmp_path) == [
        "page.md:2: ## Why divide by \\(\\sqrt{d_k}\\)?",
        "page.md:6: Why $\\varepsilon$",
        "page.md:9: #### \\[x\\]",
        "labs/lab.py:3: ## What $\\varepsilon$ does",
    ]
