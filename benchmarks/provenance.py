"""What a benchmark result records about where it was measured: the processor, the
commit, and a hash of the package's modules it ran (so a quoted result can be traced
to the code it measured). Shared by the benchmarks beside this file."""

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


def package_sha256(modules) -> str:
    """A hash of the named modules of src/llm_from_scratch/, e.g. ("model.py",)."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode() + b"\0" + (PACKAGE / name).read_bytes())
    return digest.hexdigest()
