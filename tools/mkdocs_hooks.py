"""MkDocs hooks: refuse to build a site whose math and diagrams could not render."""

from pathlib import Path

from mkdocs.exceptions import PluginError

VENDORED = ["assets/vendor/mathjax/tex-mml-chtml.js", "assets/vendor/mermaid/mermaid.min.js"]


def on_config(config):
    missing = [f for f in VENDORED if not (Path(config["docs_dir"]) / f).exists()]
    if missing:
        raise PluginError(
            f"missing {', '.join(missing)}: run `tools/fetch-vendor-js` (make does it) to "
            "fetch MathJax and Mermaid from npm, so formulas and diagrams render offline"
        )
    return config
