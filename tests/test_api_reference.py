"""The API reference page (docs/reference.md) is made from the pages while the site
builds: every public name of the package is on it, under the chapter that defines it;
and the names the package exports at its top level are the ones the modules define."""

import importlib
import re
from pathlib import Path

import llm_from_scratch
from tangler.reference import public_names, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"


def test_public_names_come_with_the_chapter_that_defines_them():
    found = {(module, name): page.name for page, module, name in public_names(ROOT)}
    assert found[("llm_from_scratch.model", "GPTModel")] == "08-gpt-model.md"
    assert found[("llm_from_scratch.model", "LayerNorm")] == "03-layer-normalization.md"
    assert found[("llm_from_scratch.generate", "generate_text_simple")] == "09-text-generation.md"
    assert found[("llm_from_scratch.kv_cache", "KVCache")] == "12-kv-cache.md"
    assert found[("llm_from_scratch.pretrained", "load_gpt2")] == "11-checkpoints.md"
    assert not [key for key in found if key[1].startswith("_") or "__main__" in key[0]]


def test_every_public_name_is_importable_where_the_reference_says():
    for _, module, name in public_names(ROOT):
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_the_generated_markdown_puts_each_entry_under_its_chapter():
    text = reference_markdown(ROOT, REFERENCE)
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    where = {}
    for section in sections:
        link = re.search(r"\]\((chapters/[^)]+\.md)\)", section).group(1)
        for entry in re.findall(r"^::: (\S+)$", section, flags=re.M):
            where[entry] = Path(link).name
    expected = {f"{module}.{name}": page.name for page, module, name in public_names(ROOT)}
    assert where == expected


def test_the_built_page_documents_every_public_name(built_site):
    html = (built_site / "reference" / "index.html").read_text(encoding="utf-8")
    missing = [f"{module}.{name}" for _, module, name in public_names(ROOT)
               if f'id="{module}.{name}"' not in html]
    assert missing == []
    assert "<!-- api-reference -->" not in html  # the marker was replaced


def test_the_top_level_exports_are_the_modules_own_objects():
    assert sorted(llm_from_scratch.__all__) == sorted(set(llm_from_scratch.__all__))
    defined = {name: module for _, module, name in public_names(ROOT)}
    for name in llm_from_scratch.__all__:
        assert name in defined, f"{name} is exported but no page defines it"
        module = importlib.import_module(defined[name])
        assert getattr(llm_from_scratch, name) is getattr(module, name)
    assert {"GPTModel", "GPTConfig", "generate", "load_gpt2"} <= set(llm_from_scratch.__all__)
