"""The site builds strictly, shows tangled blocks with their file, and executes the labs."""

import re
from pathlib import Path


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
