"""The benchmark results the pages quote (docs/assets/benchmark*.json) were measured on
the package's code as it is: each records the modules it ran and a hash of their code
(benchmarks/provenance.py), and a changed module makes its figures stale until the
benchmark's command is rerun."""

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "docs" / "assets"
RESULTS = sorted(ASSETS.glob("benchmark*.json"))
REQUIRED = ("processor", "threads", "torch", "transformers", "command", "commit",
            "modules", "code_sha256")

_spec = importlib.util.spec_from_file_location("provenance",
                                               ROOT / "benchmarks" / "provenance.py")
provenance = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(provenance)


def test_there_are_results_to_check():
    assert len(RESULTS) >= 4, RESULTS


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_result_records_where_and_what_it_measured(path):
    result = json.loads(path.read_text())
    missing = [key for key in REQUIRED if key not in result]
    assert not missing, f"{path.name} lacks {missing}: rerun its benchmark"
    assert result["command"].startswith("python benchmarks/")
    assert (ROOT / result["command"].split()[1]).is_file(), result["command"]


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_result_measured_the_code_as_it_is(path):
    result = json.loads(path.read_text())
    assert "modules" in result, f"{path.name} records no code hash: rerun its benchmark"
    now = provenance.code_sha256(result["modules"])
    assert result["code_sha256"] == now, (
        f"docs/assets/{path.name} was measured on other code: "
        f"{', '.join(result['modules'])} changed since. Rerun "
        f"`{result['command']} --json docs/assets/{path.name}` and update the figures "
        "the pages quote from it.")


def test_every_quoted_result_exists():
    quoted = set()
    for page in (ROOT / "docs").rglob("*.md"):
        quoted |= set(re.findall(r"assets/(benchmark[\w-]*\.json)", page.read_text()))
    assert quoted, "no page quotes a benchmark result"
    assert quoted <= {p.name for p in RESULTS}, quoted - {p.name for p in RESULTS}


def test_code_hash_follows_code_not_docstrings_or_comments(tmp_path):
    package = tmp_path / "package"
    shutil.copytree(provenance.PACKAGE, package)
    before = provenance.code_sha256(["model.py"], package)
    model = package / "model.py"
    source = model.read_text()
    model.write_text(source.replace('"""', '"""Edited. ', 1)
                     .replace("# ", "# edited: ", 1))
    assert model.read_text() != source
    assert provenance.code_sha256(["model.py"], package) == before
    model.write_text(source.replace("0.044715", "0.044716", 1))
    assert model.read_text() != source
    assert provenance.code_sha256(["model.py"], package) != before


def _load(name):
    return json.loads((ASSETS / name).read_text())


def test_performance_tables_are_the_results_they_cite():
    """The Performance page's two tables hold the figures of the files it links,
    first run and second, as the benchmarks wrote them."""
    page = (ROOT / "docs" / "performance.md").read_text()
    first, second = _load("benchmark.json"), _load("benchmark-second-run.json")
    rows = {"forward_1x128": "forward, 1 × 128 tokens",
            "forward_4x256": "forward, 4 × 256 tokens",
            "decode_64_cached": "greedy decoding, 64 new tokens, KV cache"}
    for key, label in rows.items():
        m1, m2 = first[key]["median_s"], second[key]["median_s"]

        def ratio(a, b):
            return f"{m1[a] / m1[b]:.2f}× ({m2[a] / m2[b]:.2f}×)"

        row = (f"| {label} | {m1['plain']:.3f} | {m1['optimized']:.3f} | "
               f"{m1['transformers']:.3f} | {ratio('transformers', 'plain')} | "
               f"{ratio('transformers', 'optimized')} | {ratio('plain', 'optimized')} |")
        assert row in page, f"the Performance page should have the row\n{row}"

    runs = _load("benchmark-train.json"), _load("benchmark-train-second-run.json")
    names = ("plain", "optimized", "transformers")

    def cells(figure):
        return " | ".join("; ".join(figure(run, n) for run in runs) for n in names)

    memory = lambda key: lambda run, n: f"{run['memory'][n][key]:,.0f}"  # noqa: E731
    for label, figure in (
            ("seconds a step (first run; second run)",
             lambda run, n: f"{run['median_seconds'][n]:.2f}"),
            ("tokens a second", lambda run, n: f"{run['tokens_per_second'][n]:,.0f}"),
            ("peak memory, MB", memory("peak_rss_mb")),
            ("of which after the imports, MB", memory("above_imports_mb"))):
        row = f"| {label} | {cells(figure)} |"
        assert row in page, f"the Performance page should have the row\n{row}"
