"""Shared test setup: the hypothesis profile, and the slow jobs some tests wait for (the
site build, the labs run as scripts, the training runs under torchrun), started in the
background at collection time."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# Property tests: a bounded default for every run; `HYPOTHESIS_PROFILE=thorough` digs deeper.
# database=None and a home directory outside the tree: the suite writes nothing into the
# tree it checks (hypothesis would otherwise keep caches in .hypothesis/).
set_hypothesis_home_dir(Path(tempfile.mkdtemp(prefix="hypothesis-")))
# The default profile is derandomized: every run draws the same examples, so a red run
# can be rerun, and CI cannot fail on a draw no one has seen; `thorough` explores.
settings.register_profile("default", max_examples=20, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parents[1]
_jobs = {}  # fixture name (or (name, module)) -> (job, folder) of the job it waits for
_stopping = threading.Event()


class Job:
    """A background job: started by the one background thread after the jobs before it,
    so that the jobs share one core between them instead of crowding both."""

    def __init__(self, start, folder: Path):
        self.start, self.folder = start, folder
        self.process, self.error = None, None
        self.done = threading.Event()

    def run(self):
        try:
            if not _stopping.is_set():
                self.process = self.start(self.folder)
                self.process.wait()
        except Exception as error:  # reported to the test that waits for the job
            self.error = error
        finally:
            self.done.set()

    def wait(self, timeout):
        if not self.done.wait(timeout):
            raise TimeoutError(f"a background job did not finish in {timeout} s")

    @property
    def returncode(self):
        if self.error is not None:
            raise self.error
        return None if self.process is None else self.process.returncode


def start_site_build(folder: Path) -> subprocess.Popen:
    """`mkdocs build --strict` into folder/site, its output in folder/out.txt (a file:
    a pipe could fill up and stall the build)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder / "site")],
        cwd=ROOT, stdout=(folder / "out.txt").open("w"), stderr=subprocess.STDOUT,
    )


RUN_COMMANDS = """
import json, os, subprocess, sys
folder, commands = sys.argv[1], json.loads(sys.argv[2])
results = {}
for name, (argv, env) in commands.items():
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=240,
                              env=dict(os.environ, **env))
        results[name] = [done.returncode, done.stdout, done.stderr]
    except subprocess.TimeoutExpired:
        results[name] = [None, "", "timed out after 240 s: a hang"]
with open(os.path.join(folder, "results.json"), "w") as out:
    json.dump(results, out)
"""


def start_commands(folder: Path, commands: dict) -> subprocess.Popen:
    """Run commands ({name: argv, or (argv, extra environment)}) one after the other in
    a background process; results.json in folder gets each one's [returncode, stdout,
    stderr] (returncode None: it hung, and was killed after 240 s)."""
    commands = {name: command if isinstance(command, tuple) else (command, {})
                for name, command in commands.items()}
    return subprocess.Popen([sys.executable, "-c", RUN_COMMANDS, str(folder), json.dumps(commands)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pytest_collection_modifyitems(session, config, items):
    """Run the tests that wait for a background job last, and start the jobs now: the
    site build (mostly the execution of the labs, about a minute on a fresh clone), the
    labs run as scripts and the tests' subprocesses take the spare core, one after
    another, while the other tests run."""
    starters = {"built_site": lambda item: start_site_build,
                "lab_runs": lambda item: item.module.start_lab_runs,
                # Subprocesses a module's tests check: its background_commands(folder).
                "commands": lambda item: lambda folder: start_commands(
                    folder, item.module.background_commands(folder))}
    waiting = [item for item in items if set(starters) & set(getattr(item, "fixturenames", ()))]
    items[:] = [item for item in items if item not in waiting] + waiting
    queue = []
    for item in waiting:
        for name in sorted(set(starters) & set(item.fixturenames)):
            key = (name, item.module.__name__) if name == "commands" else name
            if key not in _jobs:
                folder = Path(tempfile.mkdtemp(prefix=f"{name}-"))
                _jobs[key] = (Job(starters[name](item), folder), folder)
                queue.append(_jobs[key][0])
    # The site build first: the longest, and the one most tests wait for.
    queue.sort(key=lambda job: job is not _jobs.get("built_site", (None,))[0])
    threading.Thread(target=lambda: [job.run() for job in queue], daemon=True).start()


def pytest_sessionfinish(session, exitstatus):
    _stopping.set()  # start nothing more
    for job, folder in _jobs.values():
        if job.process is not None and job.process.poll() is None:
            job.process.kill()  # an interrupted or filtered run: do not leave it behind
            job.process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def background():
    """The (job, folder) of the background job started for a fixture: job.wait(timeout),
    then job.returncode, as for a process."""
    return lambda name: _jobs[name]


@pytest.fixture(scope="module")
def commands(request) -> tuple[dict, Path]:
    """({name: (returncode, stdout, stderr)}, folder) of the commands the test module's
    background_commands(folder) gave, run in the background (start_commands)."""
    process, folder = _jobs[("commands", request.module.__name__)]
    process.wait(timeout=900)
    assert process.returncode == 0, "the background commands did not finish"
    results = json.loads((folder / "results.json").read_text())
    return {name: tuple(result) for name, result in results.items()}, folder


@pytest.fixture(scope="session")
def built_site(background) -> Path:
    """`mkdocs build --strict` into a temporary folder; the build executes every lab.

    The build writes only the site folder: its tangle plugin checks src/ and fails, naming
    the file, if the package differs from the pages (it never re-tangles here).
    """
    process, folder = background("built_site")
    process.wait(timeout=1200)
    assert process.returncode == 0, (folder / "out.txt").read_text()[-8000:]
    return folder / "site"
