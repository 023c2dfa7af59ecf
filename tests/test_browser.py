"""The built site, served on localhost and driven in headless Chromium, works for a reader.

Chromium comes from Debian's `chromium` and `chromium-driver` packages (.ci/run installs
them). Without them the test skips with the reason, except under CI, where it fails.
"""

import functools
import http.server
import os
import re
import shutil
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

# Debian's chromium here; GitHub's runners ship Google Chrome, which drives the same way.
CHROMIUM = next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)
CHROMEDRIVER = shutil.which("chromedriver")


def _require_chromium():
    if CHROMIUM and CHROMEDRIVER:
        return
    reason = "Chromium not found: install Debian's chromium and chromium-driver packages"
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI must run the browser test)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site_url(built_site):
    handler = functools.partial(QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}", "--window-size=1280,1000",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    # Material draws mermaid charts into *closed* shadow roots; open them so the test can
    # look inside, as a reader's eyes can.
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "const attach = Element.prototype.attachShadow;"
        "Element.prototype.attachShadow = function (init) {"
        "  return attach.call(this, Object.assign({}, init, {mode: 'open'})); };"
    )})
    yield driver
    driver.quit()


def wait_for(driver, script, timeout=20):
    """Poll a JavaScript expression until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


def open_page(driver, url):
    driver.get(url)
    wait_for(driver, "document.readyState === 'complete'")


def console_errors(driver):
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_tangled_block_shows_its_file(browser, site_url):
    open_page(browser, site_url + "chapters/01-configuration/")
    titles = browser.execute_script(
        "return [...document.querySelectorAll('.highlight .filename')].map(e => e.textContent)"
    )
    assert "src/llm_from_scratch/model.py" in titles and "Output" in titles
    assert console_errors(browser) == []


def test_formulas_are_typeset(browser, site_url):
    open_page(browser, site_url + "chapters/03-layer-normalization/")
    typeset = wait_for(browser, "document.querySelectorAll('.arithmatex mjx-container').length")
    assert typeset > 0
    raw = browser.execute_script(
        "return [...document.querySelectorAll('.arithmatex')]"
        ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent)"
    )
    assert raw == [], f"formulas left as TeX: {raw[:3]}"
    assert "$$" not in browser.execute_script("return document.body.innerText")
    assert console_errors(browser) == []


def test_mermaid_chart_renders_to_svg(browser, site_url):
    open_page(browser, site_url)
    charts = wait_for(
        browser,
        "[...document.querySelectorAll('div.mermaid')].filter(e => e.shadowRoot &&"
        " e.shadowRoot.querySelector('svg g.node')).length",
    )
    assert charts == browser.execute_script("return document.querySelectorAll('.mermaid').length")
    assert console_errors(browser) == []


def test_search_finds_the_layernorm_chapter(browser, site_url):
    open_page(browser, site_url)
    browser.execute_script("document.querySelector('label.md-header__button[for=__search]').click()")
    box = browser.find_element("css selector", "input.md-search__input")
    box.send_keys("LayerNorm")
    links = wait_for(
        browser,
        "[...document.querySelectorAll('.md-search-result__item a')].map(a => a.href).filter(h => h.includes('03-layer-normalization')).length",
    )
    assert links > 0
    assert console_errors(browser) == []


def test_lab_page_shows_its_figures(browser, site_url):
    open_page(browser, site_url + "labs/layer_normalization/")
    images = wait_for(
        browser,
        "[...document.querySelectorAll('.jupyter-wrapper img')].filter(i => i.complete && i.naturalWidth > 0).length",
    )
    assert images > 0
    assert console_errors(browser) == []


def test_each_chapter_offers_its_notebook_and_each_lab_its_script(browser, site_url):
    open_page(browser, site_url + "chapters/07-transformer-block/")
    href = browser.execute_script("return document.querySelector('a.lfs-download').href")
    assert href.endswith("07-transformer-block.ipynb")
    open_page(browser, site_url + "labs/transformer_block/")
    href = browser.execute_script("return document.querySelector('a.lfs-download').href")
    assert href.endswith("transformer_block.py")


# The text a reader sees of a page after MathJax has run, in blocks (paragraph, list item,
# heading, table cell, TOC entry ...), leaving out code, whose `$` is a shell prompt or a
# string, typeset formulas, and the hidden copy of each lab cell kept for its copy button.
# Collapsed boxes count: a click opens them. Returns the blocks that still hold TeX.
RAW_TEX_SCRIPT = r"""
const skip = "pre, code, kbd, samp, script, style, noscript, template, textarea, svg, math,"
  + " mjx-container, .clipboard-copy-txt";
const SEP = "\u2029";
const parts = [];
(function walk(node) {
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) parts.push(child.data);
    if (child.nodeType !== Node.ELEMENT_NODE || child.matches(skip)) continue;
    const block = !getComputedStyle(child).display.startsWith("inline");
    if (block) parts.push(SEP);
    walk(child);
    if (block) parts.push(SEP);
  }
})(document.body);
const tex = /\$\$|\\\(|\\\)|\\\[|\\\]|\$[^\s$](?:[^$]*[^\s$])?\$/;
return parts.join("").split(SEP).filter(block => tex.test(block))
  .map(block => block.replace(/\s+/g, " ").trim().slice(0, 120));
"""

MATHJAX_DONE = """
const done = arguments[arguments.length - 1];
const ready = window.MathJax && MathJax.startup && MathJax.startup.promise;
(ready || Promise.resolve()).then(() => done(null), error => done(String(error)));
"""


# The widest line of each code block that scrolls sideways, but in an attribute's value.
SCROLLING_CODE = """
return [...document.querySelectorAll('pre > code')]  // Material scrolls the code
  .filter(code => code.scrollWidth > code.clientWidth + 1
                  && !code.closest('.doc-attribute'))
  .map(code => code.textContent.split('\\n')
    .reduce((a, b) => a.length >= b.length ? a : b).trim().slice(0, 80))
"""


def site_pages(built_site):
    """The path of every page of the built site, "" for the front page."""
    paths = [p.parent.relative_to(built_site).as_posix() for p in built_site.rglob("index.html")]
    return sorted("" if path == "." else path + "/" for path in paths)


def labs_with_math():
    """The labs whose Markdown cells hold a formula, by name."""
    labs = (Path(__file__).parents[1] / "docs" / "labs").glob("*.py")
    formula = re.compile(r"^# .*\$[^$\s](?:[^$]*[^$\s])?\$", re.MULTILINE)
    return {lab.stem for lab in labs if formula.search(lab.read_text(encoding="utf-8"))}


def test_no_page_shows_raw_tex(browser, site_url, built_site):
    """Every page, labs included, after MathJax has run: no `$…$`, `$$`, `\\(`, `\\[` left
    in its text, no formula MathJax could not parse, no formula typeset outside the places
    formulas are written (arithmatex's elements, the labs' Markdown cells: a `$` elsewhere
    is a dollar), no error in the console; and each lab whose cells hold formulas shows
    them typeset. On the way (one visit per page keeps the suite fast): no code block of
    a Markdown page scrolls sideways, API signatures included. Exempt are the value of a
    module attribute (a hash, a pattern or a URL cannot be wrapped) and the labs, whose
    notebook cells are narrower than the pages' column."""
    pages = site_pages(built_site)
    with_math = labs_with_math()
    assert with_math and {f"labs/{lab}/" for lab in with_math} <= set(pages)
    browser.set_script_timeout(30)
    problems = []
    for page in pages:
        open_page(browser, site_url + page)
        found = []
        if error := browser.execute_async_script(MATHJAX_DONE):
            found.append(f"MathJax failed: {error}")
        deadline = time.monotonic() + 3  # in case typesetting is still under way
        while (raw := browser.execute_script(RAW_TEX_SCRIPT)) and time.monotonic() < deadline:
            time.sleep(0.2)
        found += [f"raw TeX: {block}" for block in raw]
        if browser.execute_script("return document.querySelectorAll('mjx-merror').length"):
            found.append("a formula MathJax could not parse")
        found += [f"typeset outside a formula's place: {text}" for text in browser.execute_script(
            "return [...document.querySelectorAll('mjx-container')]"
            ".filter(m => !m.closest('.arithmatex, .jp-RenderedMarkdown'))"
            ".map(m => (m.parentElement.textContent || '').trim().slice(0, 80))"
        )]
        typeset = browser.execute_script("return document.querySelectorAll('mjx-container').length")
        if page.startswith("labs/") and page.split("/")[1] in with_math and not typeset:
            found.append("no typeset formula, though the lab's cells hold some")
        found += [f"console: {message}" for message in console_errors(browser)]
        if not page.startswith("labs/"):
            found += [f"code scrolls sideways: {line}"
                      for line in browser.execute_script(SCROLLING_CODE)]
        # A page's table of contents is there twice (sidebar, and menu for small screens).
        problems += [f"{page or '/'}: {p}" for p in dict.fromkeys(found)]
    if problems:
        pytest.fail(f"{len(problems)} problem(s) with formulas or code:\n" + "\n".join(problems))


def test_eighty_characters_of_code_fit_the_column(browser, site_url):
    """The width tests/test_page_width.py allows fits a code block of a chapter without
    scrolling, at each desktop width where Material's layout changes. (Boxes set code in a
    smaller font, so it fits there too.)"""
    open_page(browser, site_url + "chapters/10-gpt2-weights/")
    fits = """
      const block = document.createElement("div");
      block.className = "highlight";
      block.innerHTML = "<pre><code>" + "x".repeat(80) + "</code></pre>";
      document.querySelector(".md-content .md-typeset").append(block);
      const code = block.querySelector("code");
      const fits = code.scrollWidth <= code.clientWidth;
      block.remove();
      return fits;
    """
    too_narrow = []
    try:
        for width in (960, 1100, 1220, 1280, 1600, 2000):
            browser.set_window_size(width, 1000)
            if not browser.execute_script(fits):
                too_narrow.append(width)
    finally:
        browser.set_window_size(1280, 1000)
    assert too_narrow == [], f"80 characters of code scroll sideways at {too_narrow} px"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "src"):
            if attrs.get(name) and tag in ("a", "img", "script", "link"):
                self.links.append(attrs[name])


def test_no_broken_internal_links(built_site):
    broken = []
    for page in built_site.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        base = "/" + page.relative_to(built_site).as_posix()
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("#", "mailto:", "data:")):
                continue
            target = built_site / unquote(urlsplit(urljoin(base, link)).path).lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(built_site)} -> {link}")
            elif parts.fragment and target.suffix == ".html":
                # A heading anchor: the target page must have an element with that id.
                if f'id="{unquote(parts.fragment)}"' not in target.read_text(encoding="utf-8"):
                    broken.append(f"{page.relative_to(built_site)} -> {link} (no such anchor)")
    assert broken == []
