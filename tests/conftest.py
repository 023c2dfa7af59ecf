"""Shared test setup: the hypothesis profile, and one strict site build per session,
started in the background as soon as the collected tests show that one needs it."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# Property tests: a bounded default for every run; `HYPOTHESIS_PROFILE=thorough` digs deeper.
# database=None and a home directory outside the tree: the suite writes nothing into the
# tree it checks (hypothesis would otherwise keep caches in .hypothesis/).
set_hypothesis_home_dir(Path(tempfile.mkdtemp(prefix="hypothesis-")))
settings.register_profile("default", max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parents[1]
_build = {}  # the background `mkdocs build`: its process and site folder
_jobs = {}  # other background jobs, by the fixture that waits for them: (process, folder)


@pytest.fixture(scope="session")
def background():
    """The (process, folder) of the background job started for a fixture."""
    return lambda name: _jobs[name]


def pytest_collection_modifyitems(session, config, items):
    """Run the tests that wait for a background job last, and start the jobs now: the
    site build (mostly the execution of the labs, about a minute on a fresh clone) and
    the labs run as scripts take the spare core while the other tests run."""
    waiting = [item for item in items
               if {"built_site", "lab_runs"} & set(getattr(item, "fixturenames", ()))]
    items[:] = [item for item in items if item not in waiting] + waiting
    for item in waiting:
        if "lab_runs" in item.fixturenames and "lab_runs" not in _jobs:
            folder = Path(tempfile.mkdtemp(prefix="labs-"))
            _jobs["lab_runs"] = (item.module.start_lab_runs(folder), folder)
    if not any("built_site" in item.fixturenames for item in waiting):
        return
    folder = Path(tempfile.mkdtemp(prefix="site-build-"))
    _build["folder"], _build["site"] = folder, folder / "site"
    _build["log"] = open(folder / "build.log", "w+")  # a file: a pipe could fill and stall it
    _build["process"] = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(_build["site"])],
        cwd=ROOT, stdout=_build["log"], stderr=subprocess.STDOUT,
    )


def pytest_sessionfinish(session, exitstatus):
    for process, folder in _jobs.values():
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
    process = _build.get("process")
    if process is not None and process.poll() is None:
        process.kill()  # an interrupted or filtered run: do not leave it behind
        process.wait()
    if "folder" in _build:
        _build["log"].close()
        shutil.rmtree(_build["folder"], ignore_errors=True)


@pytest.fixture(scope="session")
def built_site() -> Path:
    """`mkdocs build --strict` into a temporary folder; the build executes every lab.

    The build writes only the site folder: its tangle plugin checks src/ and fails, naming
    the file, if the package differs from the pages (it never re-tangles here).
    """
    process = _build["process"]
    process.wait(timeout=1200)
    _build["log"].seek(0)
    assert process.returncode == 0, _build["log"].read()[-8000:]
    return _build["site"]
