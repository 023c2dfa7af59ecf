# Two things to do with a fresh clone: `make serve` (read the site) and `make test`.
# Both create .venv, install the project into it and fetch the site's JavaScript on
# first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENDOR := docs/assets/vendor
# PyTorch is installed first, on its own, so pip never picks a build for us. The pin
# takes a CPU wheel where one is provided locally; elsewhere choose your own, e.g.
# `make test TORCH=torch` (pip's default build for your platform), or a CPU-only
# build from PyTorch's own index: `make test TORCH="torch --index-url <its CPU index>"`.
TORCH ?= torch==2.13.0

.PHONY: serve test tangle clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# MathJax and Mermaid from the npm registry, served by the site itself (works offline).
$(VENDOR)/VERSIONS: tools/fetch-vendor-js
	tools/fetch-vendor-js $(VENDOR)

serve: $(BIN)/.installed $(VENDOR)/VERSIONS
	$(BIN)/mkdocs serve

# The suite checks src/ against the pages and never re-tangles: a hand edit of the
# generated package must fail the tests, not vanish. `make tangle` writes src/.
test: $(BIN)/.installed $(VENDOR)/VERSIONS
	$(BIN)/python -m pytest

tangle: $(BIN)/.installed
	$(BIN)/python -m tangler

clean:
	rm -rf $(VENV) $(VENDOR) site .cache
