"""A dependency upgrade, for real (issue 12's dependency-change acceptance line).

The previous release saves a baseline under an older numpy; this checkout, under this
environment's numpy, then judges the same target unchanged and made slower. Every step is
its own pytest process, as separate CI runs would be:

1. a fresh virtual environment in the work folder with `numpy==OLD` (`--old-numpy`) and
   pytest-hwperf as of `--old-ref` (a `git archive` of it; by default the last commit
   before fingerprint v2, whose baselines are keyed by hardware *and* numpy's and torch's
   major.minor), its other dependencies pinned to this environment's versions;
2. `--saves` runs of `pytest --hwperf --hwperf-save` there, on a numpy target;
3. in this environment (this interpreter, this checkout, this numpy): the target
   unchanged, then made `--slower` percent slower (more of the same work). The slower run
   must fail, its line naming the numpy change (`across numpy 2.3 -> 2.4`), against the
   baseline the previous release saved (a migration, not `no baseline`).

The unchanged run is shown for reference: a numpy upgrade may move the target's speed
for real (another OpenBLAS), and the gate is right to say so.

Usage: python benchmarks/dependency_change.py [--old-numpy 2.3.5] [--old-ref 107c7c0]
       [--saves 3] [--slower 30] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import textwrap
import venv
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST = textwrap.dedent(
    """
    import numpy as np

    WORK = {work}
    A = np.random.default_rng(0).standard_normal((96, 96)) / 96


    def target():
        x = A
        for _ in range(WORK):
            x = np.tanh(x @ A)
        return x


    def test_target(hwperf):
        hwperf(target)
    """
)
PINNED = ["pytest", "pytest-benchmark", "psutil", "nvidia-ml-py", "threadpoolctl"]
BASE_WORK = 40


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    print(f"$ {shlex.join(cmd)}", flush=True)
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True, check=False)


def _old_env(work: Path, ref: str, numpy_version: str, env: dict[str, str]) -> Path:
    """A virtual environment with the previous release and the older numpy."""
    source = work / "old-src"
    source.mkdir()
    found = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref], capture_output=True
    )
    if found.returncode != 0:
        why = found.stderr.decode(errors="replace").strip().splitlines()
        sys.exit(
            f"--old-ref {ref}: no such commit in a git checkout at {REPO}"
            f" ({why[-1] if why else 'git archive failed'}); run it from a clone"
        )
    archive = found.stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    env_dir = work / "old-venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pins = work / "pins.txt"
    pins.write_text("".join(f"{name}=={metadata.version(name)}\n" for name in PINNED))
    install = [str(python), "-m", "pip", "install", "-q", "-c", str(pins)]
    done = _run([*install, f"numpy=={numpy_version}", str(source)], work, env)
    if done.returncode != 0:
        sys.exit(f"installing the previous release failed:\n{done.stdout}{done.stderr}")
    return python


def _pytest(python: Path, project: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    pytest = [str(python), "-m", "pytest", "--hwperf", "-p", "no:cacheprovider", "-q", "-rA"]
    done = _run([*pytest, "-p", "no:benchmark", *extra, "test_target.py"], project, env)
    lines = [line for line in done.stdout.splitlines() if "target" in line or "passed" in line]
    lines += [line for line in done.stdout.splitlines() if "failed" in line and line not in lines]
    return done.returncode, "\n".join(lines[-8:])


def _numpy_of(python: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        [str(python), "-c", "import numpy; print(numpy.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--old-numpy", default="2.3.5", help="numpy of the saves (2.3.5)")
    parser.add_argument("--old-ref", default="107c7c0", help="the previous release (107c7c0)")
    parser.add_argument("--saves", type=int, default=3, help="saves by the previous release (3)")
    parser.add_argument("--slower", type=int, default=30, help="percent more work (30)")
    parser.add_argument("--workdir", type=Path, help="a new folder to keep (default: temp)")
    args = parser.parse_args()
    if args.saves < 1 or args.slower < 1:
        parser.error("--saves and --slower: 1 or more")
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        parser.error(f"--workdir {args.workdir}: not empty (a new folder, kept afterwards)")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTEST_ADDOPTS"}}
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"  # no BLAS pool on 2 cores
    keep = args.workdir is not None
    work = args.workdir if keep else Path(tempfile.mkdtemp(prefix="hwperf-depchange-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"$ {shlex.join([sys.executable, *sys.argv])}  # work folder {work}")
    old_python = _old_env(work, args.old_ref, args.old_numpy, env)
    new_python = Path(sys.executable)
    print(f"# saves: pytest-hwperf at {args.old_ref}, numpy {_numpy_of(old_python, env)}")
    print(f"# judged: this checkout ({REPO}), numpy {_numpy_of(new_python, env)}")
    project = work / "project"
    project.mkdir()
    test = project / "test_target.py"
    test.write_text(TEST.format(work=BASE_WORK))
    for index in range(args.saves):
        code, text = _pytest(old_python, project, env, "--hwperf-save")
        print(f"save {index + 1}: exit {code}\n{text}")
    saved = sorted((project / ".hwperf" / "baselines").glob("*.json"))
    print(f"# baselines saved: {[path.name for path in saved]}")
    results: dict[str, int] = {}
    for label, work_count in (("unchanged", BASE_WORK), (f"+{args.slower}%", None)):
        count = work_count or round(BASE_WORK * (1 + args.slower / 100))
        test.write_text(TEST.format(work=count))
        code, text = _pytest(new_python, project, env)
        results[label] = code
        print(f"{label} (WORK={count}): exit {code}\n{text}")
    print(json.dumps(results))
    slower_failed = results[f"+{args.slower}%"] == 1
    print("the slower target failed" if slower_failed else "THE SLOWER TARGET DID NOT FAIL")
    return 0 if slower_failed else 1


if __name__ == "__main__":
    sys.exit(main())
