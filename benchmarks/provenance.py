"""What a benchmark result records about where it was measured: the processor, the
commit, and a hash of the code of the package's modules it ran, so that a quoted result
can be traced to the code it measured, and a test (tests/test_benchmark_files.py) fails
once that code changes. Shared by the benchmarks beside this file."""

import ast
import hashlib
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "llm_from_scratch"


def processor() -> str:
    """The processor's model name and its widest vector instructions, per Linux."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        name = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                    if line.startswith("model name"))
        flags = "AVX-512" if "avx512f" in info else "AVX2" if "avx2" in info else "no AVX2"
        return f"{name} ({flags})"
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def commit() -> str:
    """The git commit measured, with '+changes' if the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src", "benchmarks"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def _code_only(source: str) -> str:
    """The module's code without its comments and documentation strings (every
    statement that is a bare string: docstrings, and those documenting constants),
    in a canonical layout."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not (isinstance(s, ast.Expr)
                                            and isinstance(s.value, ast.Constant)
                                            and isinstance(s.value.value, str))]
            node.body = kept or [ast.Pass()]
    return ast.unparse(tree)


def code_sha256(modules, package: Path = PACKAGE) -> str:
    """A hash of the code of the named modules of package (src/llm_from_scratch/), e.g.
    ("model.py",): a change to what runs changes it, an edited docstring or comment
    does not (a benchmark's figures do not depend on them)."""
    digest = hashlib.sha256()
    for name in modules:
        code = _code_only((package / name).read_text(encoding="utf-8"))
        digest.update(name.encode() + b"\0" + code.encode() + b"\0")
    return digest.hexdigest()
