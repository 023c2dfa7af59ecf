"""Shared test setup: the hypothesis profile and one strict site build per session."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: a bounded default for every run; `HYPOTHESIS_PROFILE=thorough` digs deeper.
# database=None: no .hypothesis/ folder, since the suite writes nothing into the tree.
settings.register_profile("default", max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """`mkdocs build --strict` into a temporary folder; the build executes every lab.

    The build writes only the site folder: its tangle plugin checks src/ and fails, naming
    the file, if the package differs from the pages (it never re-tangles here).
    """
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return site
