"""The site builds strictly, shows tangled blocks with their file, and executes the labs."""

import re


def test_configuration_page_titles_the_tangled_block(built_site):
    html = (built_site / "chapters/01-configuration/index.html").read_text()
    assert re.search(r'<span class="filename">src/llm_from_scratch/model.py</span>', html)
    assert re.search(r'<span class="filename">Output</span>', html)

def test_labs_are_executed_pages_with_outputs(built_site):
    for name in ["configuration", "tokenization_basics"]:
        html = (built_site / f"labs/{name}/index.html").read_text()
        assert "jp-OutputArea" in html or "output_area" in html, name
