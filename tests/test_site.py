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
