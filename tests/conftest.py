"""Shared test setup: the hypothesis profile, and the slow jobs some tests wait for (the
site build, the labs run as scripts, the training runs under torchrun), started in the
background at collection time."""

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
    """A background job, run by the one background thread after the jobs before it, so
    that the jobs share one core between them instead of crowding both. work(job) starts
    its processes with job.start (so that an ended session can stop them) and returns
    what it returns: an exit status, or a command's results."""

    def __init__(self, work, folder: Path):
        self.work, self.folder = work, folder
        self.process, self.result, self.error = None, None, None
        self.done = threading.Event()

    def start(self, *args, **kwargs) -> subprocess.Popen:
        self.process = subprocess.Popen(*args, **kwargs)
        return self.process

    def run(self):
        try:
            if not _stopping.is_set():
                self.result = self.work(self)
        except Exception as error:  # reported to the test that waits for the job
            self.error = error
        finally:
            self.done.set()

    def wait(self, timeout):
        """The job's result, once it has finished."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"a background job did not finish in {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


def build_site(job: Job) -> int:
    """`mkdocs build --strict` into folder/site, its output in folder/out.txt (a file:
    a pipe could fill up and stall the build)."""
    return job.start(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(job.folder / "site")],
        cwd=ROOT, stdout=(job.folder / "out.txt").open("w"), stderr=subprocess.STDOUT,
    ).wait()


def run_commands(job: Job, commands: dict) -> dict:
    """Run commands ({name: argv, or (argv, extra environment)}) one after the other:
    {name: (returncode, stdout, stderr)}, returncode None for a hang, killed after 240 s."""
    results = {}
    for name, command in commands.items():
        argv, env = command if isinstance(command, tuple) else (command, {})
        process = job.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **env))
        try:
            out, err = process.communicate(timeout=240)
            results[name] = (process.returncode, out, err)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            results[name] = (None, "", "timed out after 240 s: a hang")
    return results


def pytest_collection_modifyitems(session, config, items):
    """Run the tests that wait for a background job last, and start the jobs now: the
    site build (mostly the execution of the labs, about a minute on a fresh clone), the
    labs run as scripts and the tests' subprocesses take the spare core, one after
    another, while the other tests run."""
    starters = {"built_site": lambda item: build_site,
                "lab_runs": lambda item: item.module.run_labs,
                # Subprocesses a module's tests check: its background_commands(folder).
                "commands": lambda item: lambda job: run_commands(
                    job, item.module.background_commands(job.folder))}
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
    """The (job, folder) of the background job started for a fixture."""
    return lambda name: _jobs[name]


@pytest.fixture(scope="module")
def commands(request) -> tuple[dict, Path]:
    """({name: (returncode, stdout, stderr)}, folder) of the commands the test module's
    background_commands(folder) gave, run in the background (run_commands)."""
    job, folder = _jobs[("commands", request.module.__name__)]
    return job.wait(timeout=900), folder


@pytest.fixture(scope="session")
def built_site(background) -> Path:
    """`mkdocs build --strict` into a temporary folder; the build executes every lab.

    The build writes only the site folder: its tangle plugin checks src/ and fails, naming
    the file, if the package differs from the pages (it never re-tangles here).
    """
    job, folder = background("built_site")
    assert job.wait(timeout=1200) == 0, (folder / "out.txt").read_text()[-8000:]
    return folder / "site"
