"""MkDocs plugin: keeps src/ honest while the site builds, and labels blocks on the page.

- `mkdocs build` (what the tests and CI run) never writes src/: before building it checks
  that src/llm_from_scratch/ is what the pages tangle to, and fails with the message of
  `python -m tangler --check`, naming each file that differs. Fix drift by moving any
  hand edit into its page, then running `python -m tangler`.
- `mkdocs serve` re-tangles before every rebuild, so authors see their page edits in the
  package at once, and logs each file it rewrote. It leaves alone, and names, a file
  that was changed by anything but a page (see `_retangle`).
- A tangled block gets its target file as its title bar; an expected-output block gets
  the title "Output", so a reader sees where code goes and what it printed.
- The page holding `<!-- api-reference -->` gets the API reference in its place: every
  public name of the package under the chapter that defines it (`tangler.reference`).
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

from tangler.core import (
    EXPECTED_OUTPUT,
    FENCE,
    MARKER,
    TangleError,
    differences,
    drift_report,
    existing_files,
    scan_fences,
    tangle,
    write,
)
from tangler.notebook import page_to_notebook
from tangler.reference import REFERENCE_MARKER, reference_markdown

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
    def __init__(self):
        self.command = "build"  # if MkDocs never says, check: the safe choice
        self.synced: dict[str, str] = {}  # serve: each file's text when it last matched the pages

    def on_startup(self, *, command, dirty):
        # MkDocs >= 1.4 passes the command; defining this hook also keeps this object
        # alive across the rebuilds of one `mkdocs serve`, which `self.synced` needs.
        self.command = command

    def on_pre_build(self, config):
        root = Path(config["config_file_path"]).resolve().parent
        try:
            expected = tangle(root)
            if self.command == "serve":
                self._retangle(root, expected)
                return
            problems = differences(root, expected)
        except TangleError as e:
            raise PluginError(f"tangle: {e}") from None
        if problems:
            raise PluginError(drift_report(problems))

    def _retangle(self, root: Path, expected: dict[str, str]) -> None:
        # The rule: serve rewrites a file only while it still holds exactly what the pages
        # tangled to at this serve's previous build, so that only a page edit can have
        # made it stale. Anything else (a hand edit, or drift already there when serve
        # started) is left for the author to settle with `python -m tangler`.
        actual = existing_files(root)
        left_alone = {t for t, text in actual.items() if text != expected.get(t) and text != self.synced.get(t)}
        for target in write(root, expected, keep=left_alone):
            log.info(f"re-tangled {target}")
        for target in sorted(left_alone):
            log.warning(
                f"left {target} alone: it differs from the pages, and not because of a page "
                "edit this serve saw (a hand edit?); move any hand edit into its page, then "
                "run `python -m tangler`"
            )
        self.synced = {t: text for t, text in expected.items() if t not in left_alone}

    def on_page_markdown(self, markdown, page, config, files):
        if REFERENCE_MARKER in markdown:  # the API reference, made from the pages
            root = Path(config["config_file_path"]).resolve().parent
            generated = reference_markdown(root, Path(page.file.abs_src_path).resolve())
            markdown = markdown.replace(REFERENCE_MARKER, generated)
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
