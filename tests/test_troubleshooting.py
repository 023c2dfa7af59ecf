"""The troubleshooting page only points, and what it points at is real.

- Every message it quotes is one the code can really give. A quoted message is a code
  span in the first column of a table headed "Message"; `…` stands for what the code fills
  in. Each piece between the `…` must be literal text of a string in the package (read with
  `ast`, so a message split over several lines still counts), or text that a page prints
  in an output block (which pytest-codeblocks checks). The tangler's messages, quoted in
  CONTRIBUTING.md, are held to the same rule.
- Every entry links to a page that exists, and to a heading of it that exists.
- Every `raise` in the package has an entry: its first long piece of literal text is
  on the page.
"""

import ast
import re
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE = DOCS / "troubleshooting.md"
ELLIPSIS = "…"
FIELD = "\0"  # where an f-string fills in a value
MIN_LITERAL = 12  # characters of literal text a quote (or a raise site's key piece) needs


# --- reading the code -------------------------------------------------------------------

def _template(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The text of a string expression, with FIELD where a value is filled in at run time."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(value.value)
            elif (isinstance(value.value, ast.Name) and value.value.id in constants
                  and value.conversion == -1 and value.format_spec is None):
                parts.append(constants[value.value.id])  # a module's string constant
            else:
                parts.append(FIELD)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # f"...: " + "; ".join(...)
        left = _template(node.left, constants)
        return None if left is None else left + FIELD
    return None


def _modules(folder: Path):
    """(file name, syntax tree, its module-level string constants) for each .py file."""
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {target.id: node.value.value for node in tree.body
                     if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                     and isinstance(node.value.value, str)
                     for target in node.targets if isinstance(target, ast.Name)}
        yield path.name, tree, constants


def string_templates(folder: Path) -> list[str]:
    """Every string the code in folder can build, as a template."""
    return [text for _, tree, constants in _modules(folder) for node in ast.walk(tree)
            if (text := _template(node, constants)) is not None]


def raise_sites(folder: Path) -> list[tuple[str, int, str]]:
    """(file, line, template) of every `raise SomeError(<string>)` in folder."""
    sites = []
    for name, tree, constants in _modules(folder):
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
                text = _template(node.exc.args[0], constants)
                if text is not None:
                    sites.append((name, node.lineno, text))
    return sites


# --- reading the pages ------------------------------------------------------------------

def tables(text: str):
    """(header cells, body rows of cells) of each Markdown table in text."""
    for block in re.findall(r"(?m)(?:^\|.*\|[ \t]*\n?)+", text):
        rows = [[cell.strip() for cell in line.strip()[1:-1].split("|")] for line in block.strip().splitlines()]
        yield rows[0], rows[2:]


def quoted_messages(path: Path) -> list[str]:
    """The code spans in the first column of the tables headed "Message"."""
    return [quote for header, rows in tables(path.read_text(encoding="utf-8")) if header[0] == "Message"
            for row in rows for quote in re.findall(r"`([^`]+)`", row[0])]


def printed_by_pages() -> str:
    """Everything the pages show as a block's checked output, each run of whitespace
    one space: a page wraps a long message over lines (textwrap.fill)."""
    outputs = []
    for path in sorted(DOCS.rglob("*.md")):
        outputs += re.findall(r"<!--\s*pytest-codeblocks:expected-output[^>]*-->\s*\n(`{3,})[^\n]*\n(.*?)\n\1",
                              path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(" ".join(body.split()) for _, body in outputs)


def pieces(message: str) -> list[str]:
    """The literal pieces of a quoted message: the text between its `…`."""
    message = re.sub(r"^\w+(?:Error|Exception): ", "", message)  # the exception's name is not in the message
    return [piece for piece in message.split(ELLIPSIS) if piece.strip()]


def heading_anchors(path: Path) -> set[str]:
    """The anchors MkDocs gives the headings of a page (outside code blocks)."""
    anchors, fence = set(), None
    for line in path.read_text(encoding="utf-8").splitlines():
        opening = re.match(r"\s*(`{3,}|~{3,})", line)
        if opening and (fence is None or opening.group(1).startswith(fence)):
            fence = opening.group(1) if fence is None else None
        elif fence is None and (heading := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            anchors.add(slugify(heading.group(1).replace("`", ""), "-"))
    return anchors


def links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


# --- the tests --------------------------------------------------------------------------

CHECKED = [(PAGE, ROOT / "src" / "llm_from_scratch"), (ROOT / "CONTRIBUTING.md", ROOT / "src" / "tangler")]
QUOTES = [(page, code, quote) for page, code in CHECKED for quote in quoted_messages(page)]


def test_the_pages_quote_messages():
    assert len(quoted_messages(PAGE)) > 40 and len(quoted_messages(ROOT / "CONTRIBUTING.md")) > 10


@pytest.mark.parametrize("page, code, quote", QUOTES, ids=[quote[:50] for _, _, quote in QUOTES])
def test_every_quoted_message_is_one_the_code_can_give(page, code, quote, templates={}, printed={}):
    if code not in templates:  # read each folder and the pages once, not once per quote
        templates[code] = string_templates(code)
        printed["text"] = printed_by_pages()
    literal = sum(len(piece.strip()) for piece in pieces(quote))
    assert literal >= MIN_LITERAL, f"{quote!r} quotes too little literal text to check"
    for piece in pieces(quote):
        piece = piece.strip()  # a space beside a `…` may be the code's or the value's
        in_code = any(piece in template for template in templates[code])
        assert in_code or piece in printed["text"], (
            f"{page.name} quotes {quote!r}, but {piece!r} is neither text of a string in "
            f"{code.relative_to(ROOT)}/ nor printed by a page: update the quote")


def test_every_entry_links_to_a_page_and_heading_that_exist():
    text = PAGE.read_text(encoding="utf-8")
    rows = [row for _, body in tables(text) for row in body]
    assert len(rows) > 40
    unlinked = [row[0] for row in rows if not links(row[-1])]
    assert unlinked == [], f"entries without a link to their explanation: {unlinked}"
    broken = []
    for link in links(text):
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        path = (PAGE.parent / target).resolve() if target else PAGE
        if not path.is_file():
            broken.append(f"{link}: no page {target}")
        elif anchor and anchor not in heading_anchors(path):
            broken.append(f"{link}: no heading #{anchor} on {target or PAGE.name}")
    assert broken == [], "broken links:\n" + "\n".join(broken)


def test_every_raise_in_the_package_has_an_entry():
    """A new `raise ...Error(f"...")` gets a row on the page: the first piece of literal
    text of at least MIN_LITERAL characters must be there."""
    page = PAGE.read_text(encoding="utf-8")
    sites = raise_sites(ROOT / "src" / "llm_from_scratch")
    assert len(sites) > 40
    missing = []
    for name, line, template in sites:
        key = next((part for part in template.split(FIELD) if len(part.strip()) >= MIN_LITERAL), None)
        if key is not None and key not in page:
            missing.append(f"{name}:{line}: {key!r}")
    assert missing == [], "messages with no entry on docs/troubleshooting.md:\n" + "\n".join(missing)
