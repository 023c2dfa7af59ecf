"""MkDocs plugin: keeps src/ tangled while the site builds, and labels blocks on the page.

- Before every build (so also on each `mkdocs serve` reload) it re-tangles the pages
  into src/llm_from_scratch/, writing only files whose text changed.
- A tangled block gets its target file as its title bar; an expected-output block gets
  the title "Output", so a reader sees where code goes and what it printed.
- Every page with Python blocks is also written out as a notebook beside the page, and
  `page.nb_url` points at it (the theme override shows a download button for it, as it
  does for the labs, whose source mkdocs-jupyter copies).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import nbformat
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, get_plugin_logger

from tangler.core import EXPECTED_OUTPUT, FENCE, MARKER, TangleError, scan_fences, tangle, write
from tangler.notebook import page_to_notebook

log = get_plugin_logger(__name__)


def add_titles(markdown: str) -> str:
    """Give tangled blocks their file title and expected-output blocks an "Output" title."""
    lines = markdown.splitlines()
    for fence in scan_fences(markdown, "page"):
        title = None
        for comment in fence.comments:
            marker = MARKER.match(comment)
            if marker and fence.info == "python":
                title = marker["target"]
            elif EXPECTED_OUTPUT.match(comment) and "title=" not in fence.info:
                title = "Output"
        if title is not None:
            opening = FENCE.match(lines[fence.line - 1])
            lines[fence.line - 1] = f'{opening["indent"]}{opening["fence"]}{fence.info or "text"} title="{title}"'
    return "\n".join(lines) + ("\n" if markdown.endswith("\n") else "")


class TanglePlugin(BasePlugin):
    def on_pre_build(self, config):
        root = Path(config["config_file_path"]).resolve().parent
        try:
            changed = write(root, tangle(root))
        except TangleError as e:
            raise PluginError(f"tangle: {e}") from None
        for target in changed:
            log.info(f"re-tangled {target}")

    def on_page_markdown(self, markdown, page, config, files):
        if page.file.src_uri.endswith(".md") and "```python" in markdown:
            self._write_notebook(markdown, page, config)
        return add_titles(markdown)

    def _write_notebook(self, markdown, page, config):
        name = Path(page.file.src_uri).stem + ".ipynb"
        source = f"{config['docs_dir'].rstrip('/').split('/')[-1]}/{page.file.src_uri}"
        notebook = page_to_notebook(markdown, source, page.canonical_url or "")
        target = Path(page.file.abs_dest_path).parent / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(nbformat.writes(notebook), encoding="utf-8")
        page.nb_url = urljoin(page.abs_url, name)  # relative unless site_url is set
