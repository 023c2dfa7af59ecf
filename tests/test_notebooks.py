"""Each chapter's downloadable notebook, as the built site serves it, runs top to bottom."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

CHAPTERS = sorted(p.stem for p in (Path(__file__).parents[1] / "docs" / "chapters").glob("*.md"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_notebook_runs(built_site, chapter, tmp_path):
    path = built_site / "chapters" / chapter / f"{chapter}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert any(cell.cell_type == "code" for cell in notebook.cells)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
