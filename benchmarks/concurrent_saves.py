"""Concurrent `--hwperf-save` runs lose nothing (issue 13, item 1).

Each try starts, at once, in one rootdir whose baseline already holds many measurements:
two plain `pytest --hwperf --hwperf-save` runs on different test files, and one
`pytest -n 2 --hwperf --hwperf-save` run on a third (its controller saves, its workers
measure). After each try every new record must be in the baseline, with the old ones.

Usage: python benchmarks/concurrent_saves.py [--tries 20] [--padding 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TEST = textwrap.dedent(
    """
    import time


    def test_{name}(hwperf):
        hwperf(time.sleep, 0.0005, name="{name}")
    """
)
QUICK = ["--hwperf", "--hwperf-max-time=0.3", "--hwperf-warmup=0.01", "--hwperf-confirm=0"]
QUICK += ["--hwperf-reference=off", "-p", "no:cacheprovider", "-q"]


def _pad(root: Path, count: int) -> None:
    """Give the rootdir a large baseline first: a save of `count` measurements."""
    names = [f"pad{i}" for i in range(count)]
    (root / "test_pad.py").write_text(
        "import time\n\n\ndef test_pad(hwperf):\n"
        + "".join(f"    hwperf(time.sleep, 0, name='{n}')\n" for n in names)
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *QUICK,
            "--hwperf-max-time=0.05",
            "--hwperf-save",
            "test_pad.py",
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )


def _try(root: Path, index: int) -> tuple[bool, float]:
    names = [f"a{index}", f"b{index}", f"x{index}"]
    for name in names:
        (root / f"test_{name}.py").write_text(TEST.format(name=name))
    commands = [
        [*QUICK, "--hwperf-save", f"test_{names[0]}.py"],
        [*QUICK, "--hwperf-save", f"test_{names[1]}.py"],
        [*QUICK, "--hwperf-save", "-n", "2", f"test_{names[2]}.py"],
    ]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", *c],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for c in commands
    ]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - started
    # Under -n 2 each worker measures on its own share of the CPUs: a fingerprint (and a
    # baseline file) of its own. Every file must hold its records.
    keys: set[str] = set()
    for path in (root / ".hwperf" / "baselines").glob("*.json"):
        keys |= set(json.loads(path.read_text())["measurements"])
    wanted = {f"test_{n}.py::test_{n}::{n}@cpu" for n in names}
    ok = codes == [0, 0, 0] and wanted <= keys and any(k.endswith("pad0@cpu") for k in keys)
    if not ok:
        print(f"try {index}: exit codes {codes}, missing {sorted(wanted - keys)}")
    return ok, wall


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--padding", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        _pad(root, args.padding)
        (path,) = (root / ".hwperf" / "baselines").glob("*.json")
        print(f"baseline before: {path.stat().st_size / 1e6:.1f} MB, {args.padding} measurements")
        results = [_try(root, i) for i in range(args.tries)]
    kept = sum(ok for ok, _ in results)
    walls = sorted(w for _, w in results)
    print(f"tries: {args.tries}; every record present: {kept}/{args.tries}")
    print(f"wall per try: median {walls[len(walls) // 2]:.1f} s")
    return 0 if kept == args.tries else 1


if __name__ == "__main__":
    sys.exit(main())
