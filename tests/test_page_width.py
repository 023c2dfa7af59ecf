"""Code on every page fits the reading column: no line in a fence is wider than 80.

At 80 characters a code block fits Material's content column at the usual desktop
widths (tests/test_browser.py measures it); a wider line scrolls sideways. Every fence
counts (Python, its printed output, console sessions) except Mermaid's, which is drawn
as a diagram. A fence indented inside a box (`??? info` ...) is measured without the
box's indentation, as it is shown and as it is tangled.
"""

import re
from pathlib import Path

import pytest

MAX_WIDTH = 80
DOCS = Path(__file__).parents[1] / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fenced_lines(text):
    """Yield (line number, info string, line without the fence's indentation)."""
    opening = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if opening is None:
            if match:
                opening = match
            continue
        indent, fence = opening["indent"], opening["fence"]
        closing = line.strip()
        if match and closing[0] == fence[0] and set(closing) == {fence[0]} and len(closing) >= len(fence):
            opening = None
            continue
        yield number, opening["info"].strip(), line[len(indent):] if line.startswith(indent) else line.lstrip()


def wide_lines(path):
    return [
        f"{path.name}:{number}: {len(line)} characters"
        for number, info, line in fenced_lines(path.read_text(encoding="utf-8"))
        if len(line) > MAX_WIDTH and not info.startswith("mermaid")
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_code_lines_fit_the_reading_column(page):
    wide = wide_lines(page)
    if wide:
        pytest.fail(f"{len(wide)} code line(s) wider than {MAX_WIDTH} characters:\n" + "\n".join(wide))


def test_the_check_sees_wide_lines_in_every_kind_of_fence(tmp_path):
    page = tmp_path / "page.md"
    wide = "x" * (MAX_WIDTH + 1)
    page.write_text(
        f"{wide} prose may be long\n"
        f"```python\n{'y' * MAX_WIDTH}\n{wide}\n```\n"
        f"??? info \"box\"\n    ```python\n    {'z' * MAX_WIDTH}\n    {wide}\n    ```\n"
        f"~~~~text\n```\n{wide}\n~~~~\n"
        f"```mermaid\n{wide}\n```\n",
        encoding="utf-8",
    )
    assert wide_lines(page) == [f"page.md:{n}: {MAX_WIDTH + 1} characters" for n in (4, 9, 13)]
