"""Each chapter's downloadable notebook, as the built site serves it, runs top to bottom.

One Jupyter kernel runs them all, its namespace wiped (`%reset -f`) before each
notebook: every notebook starts from an empty namespace, and the kernel's start-up and
the imports of torch are paid once instead of once per chapter.
"""

from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

from tangler.core import scan_fences

CHAPTERS = sorted(p.stem for p in (Path(__file__).parents[1] / "docs" / "chapters").glob("*.md"))
# The book's chapters' notebooks (1-9), the ones readers download to follow the book,
# are run; those of the chapters beyond it are read but not run, to keep the suite
# within its time (chapter 10 builds GPT-2 small several times, 14 trains a model), as
# pytest-codeblocks runs the very same blocks on the pages already. A notebook that is
# not run must still hold every code block of its page, in the page's order.
READ_ONLY = {chapter for chapter in CHAPTERS if chapter[:2] >= "10"}


@pytest.fixture(scope="module")
def kernel():
    manager, client = start_new_kernel(kernel_name="python3")
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run(kernel, code: str) -> list[str]:
    """Execute code in the kernel; the tracebacks of any errors it raised."""
    errors = []

    def on_output(message):
        if message["msg_type"] == "error":
            errors.append("\n".join(message["content"]["traceback"]))

    reply = kernel.execute_interactive(code, timeout=300, output_hook=on_output)
    if reply["content"]["status"] == "error" and not errors:
        errors.append(reply["content"].get("evalue", "error"))
    return errors


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_notebook_runs(built_site, kernel, chapter, tmp_path):
    notebook = nbformat.read(built_site / "chapters" / chapter / f"{chapter}.ipynb", as_version=4)
    cells = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert cells, f"{chapter}: a notebook without code"
    if chapter in READ_ONLY:
        page = (Path(__file__).parents[1] / "docs" / "chapters" / f"{chapter}.md").read_text()
        blocks = [f.code for f in scan_fences(page, chapter) if f.info.strip() == "python"
                  and not any("tangle: src/llm_from_scratch/__main__.py" in c for c in f.comments)]
        assert [c.strip() for c in cells] == [b.strip() for b in blocks]
        return
    assert run(kernel, f"%reset -f\nimport os\nos.chdir({str(tmp_path)!r})") == []
    for number, source in enumerate(cells, start=1):
        errors = run(kernel, source)
        assert errors == [], f"{chapter}, code cell {number}:\n{source}\n" + "\n".join(errors)[-3000:]
