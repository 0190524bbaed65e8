"""Regenerate the README's sample output of `pytest --hwperf`, or check that it is current.

The README's "What it looks like" section shows a test file (its ```python block) and
the output `pytest --hwperf` prints for it. This script writes that very file as
`test_a.py` into an empty temporary folder, runs `python -m pytest --hwperf` there (in
a subprocess, with this interpreter: about five seconds), and puts the output into the
README between these two lines, leaving every other byte of the README as it was:

    <!-- sample: pytest --hwperf test_a.py -->
    <!-- /sample -->

Trimming, the same as the README's sample always had:
- only the part after collection: from the `collected N items` line to the end (the
  session header names this machine, its plugins and the temporary folder);
- a path inside the temporary folder is shown relative to it (the profile artifact:
  `.hwperf/profiles/...`), as is a path inside this checkout (`pytest_hwperf/...`);
- trailing spaces are dropped.

The run is the one a user would make in a fresh project: terminal width 80
(`COLUMNS=80`), no colours, and no `PYTEST_ADDOPTS` or `GITHUB_STEP_SUMMARY` from the
caller's environment; an empty `pytest.ini` in the folder keeps a configuration file
above it from being used.

`--check` runs the same command and compares *shapes*, not figures: exit 1 with a
one-line summary of the first difference when the README's sample no longer has the
shape of today's output. Masked before comparing (figures differ from run to run):
- every number that is not part of a word (`20.15ms` -> `#ms`, `8/8` -> `#/#`,
  `[100%]` -> `[#%]`, `in 4.03s` -> `in #s`), but `p95` and `test_a` keep theirs; the
  timestamp in a profile artifact's name;
- widths: runs of spaces (column alignment) and of `=`, `_`, `-` (rules);
- a line pytest cut to the terminal width (ending in `...`) after its first figure,
  where a wider figure moves the cut.
What is left still catches a column, a row (a test id, a measurement), a report line
or a verdict word (`pass`, `FAIL`, `PERF`) added, removed or changed.

Usage: python scripts/readme_samples.py [--check] [README]
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_hwperf.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent

OPEN = "<!-- sample: pytest --hwperf test_a.py -->"
CLOSE = "<!-- /sample -->"
TEST_FILE = "test_a.py"
RUN_TIMEOUT_S = 600.0
FENCE = "```"


class SampleError(Exception):
    """A one-line reason the sample cannot be read, made or written."""


# -- the README's block ------------------------------------------------------------------


def _marker_lines(readme: str) -> tuple[int, int]:
    """Offsets of the end of the opening marker's line and of the start of the closing
    marker's line; each marker must be a line of its own, once, the opening one first."""
    found: dict[str, list[int]] = {OPEN: [], CLOSE: []}
    offset = 0
    for line in readme.splitlines(keepends=True):
        text = line.strip()
        if text in found:
            found[text].append(offset)
        offset += len(line)
    for marker, places in found.items():
        if len(places) != 1:
            how = "not found" if not places else f"found {len(places)} times"
            raise SampleError(f"README: marker line {marker!r} {how} (it must occur once)")
    start, end = found[OPEN][0], found[CLOSE][0]
    if end < start:
        raise SampleError(f"README: {CLOSE!r} comes before {OPEN!r}")
    return readme.index("\n", start) + 1, end


def read_sample(readme: str) -> str:
    """The sample output between the markers, without its code fence."""
    start, end = _marker_lines(readme)
    block = readme[start:end].strip("\n")
    lines = block.split("\n")
    if len(lines) < 2 or lines[0].strip() != FENCE or lines[-1].strip() != FENCE:
        raise SampleError(f"README: the text between {OPEN!r} and {CLOSE!r} is not a code block")
    return "\n".join(lines[1:-1]) + "\n"


def replace_sample(readme: str, sample: str) -> str:
    """The README with the block between the markers replaced by `sample`, fenced;
    everything outside the markers (the marker lines included) is left as it was."""
    start, end = _marker_lines(readme)
    body = sample if sample.endswith("\n") else sample + "\n"
    return f"{readme[:start]}{FENCE}\n{body}{FENCE}\n{readme[end:]}"


def sample_source(readme: str) -> str:
    """The test file the sample is the output of: the last ```python block before it."""
    start, _ = _marker_lines(readme)
    blocks = re.findall(r"^```python\n(.*?)^```$", readme[:start], re.MULTILINE | re.DOTALL)
    if not blocks:
        raise SampleError(f"README: no ```python block (the test file) before {OPEN!r}")
    source: str = blocks[-1]
    return source


# -- making the sample -------------------------------------------------------------------


def trim(output: str, project: Path | str, checkout: Path | str = ROOT) -> str:
    """pytest's output as the README shows it (the rules in this module's docstring)."""
    lines = output.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("collected ")), None)
    if first is None:
        last = lines[-1] if lines else "(no output)"
        raise SampleError(f"pytest collected nothing; its last line: {last}")
    kept = "\n".join(line.rstrip() for line in lines[first:]).strip("\n") + "\n"
    for folder in (str(project), str(checkout)):
        kept = kept.replace(folder.rstrip(os.sep) + os.sep, "")
    return kept


def run_sample(source: str) -> str:
    """Run `pytest --hwperf` on `source` as test_a.py in a fresh folder; its trimmed
    output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "FORCE_COLOR")}
    env.pop("GITHUB_STEP_SUMMARY", None)
    env.update(COLUMNS="80", PY_COLORS="0")
    with tempfile.TemporaryDirectory(prefix="hwperf-sample-") as folder:
        project = Path(folder).resolve()
        (project / TEST_FILE).write_text(source, encoding="utf-8")
        (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "--hwperf"]
        try:
            done = subprocess.run(
                command,
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SampleError(f"pytest --hwperf ran over {RUN_TIMEOUT_S:.0f} s") from None
        if done.returncode not in (0, 1):  # 1: the sample has a failing test, on purpose
            tail = (done.stdout + done.stderr).strip().splitlines()
            last = tail[-1] if tail else "(no output)"
            raise SampleError(f"pytest --hwperf exited {done.returncode}: {last}")
        return trim(done.stdout, project)


# -- comparing shapes --------------------------------------------------------------------

_TIMESTAMP = re.compile(r"\d{8}T\d{6,}")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
_RULES = (re.compile(r"={2,}"), re.compile(r"_{2,}"), re.compile(r"-{2,}"))
_SPACES = re.compile(r"\s+")


def shape_of_line(line: str) -> str:
    """One line with its figures and widths masked."""
    text = _NUMBER.sub("#", _TIMESTAMP.sub("#", line))
    for rule in _RULES:
        text = rule.sub(lambda m: m.group(0)[:2], text)
    text = _SPACES.sub(" ", text).strip()
    if text.endswith("...") and "#" in text:  # cut to the terminal's width
        text = text[: text.index("#") + 1] + "..."
    return text


def shape(sample: str) -> list[str]:
    """The sample's lines with figures and widths masked."""
    return [shape_of_line(line) for line in sample.strip("\n").splitlines()]


def _clip(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shape_difference(readme_sample: str, current: str) -> str | None:
    """None when the two have the same shape, else a one-line summary of the first
    difference (line numbers are the README sample's, from 1)."""
    old, new = shape(readme_sample), shape(current)
    if old == new:
        return None
    ops = difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes()
    changes = [op for op in ops if op[0] != "equal"]
    tag, i1, _, j1, _ = changes[0]
    if tag == "replace":
        what = f"line {i1 + 1} is now {_clip(new[j1])!r}, was {_clip(old[i1])!r}"
    elif tag == "delete":
        what = f"line {i1 + 1} is gone: {_clip(old[i1])!r}"
    else:
        what = f"a line is new before README line {i1 + 1}: {_clip(new[j1])!r}"
    more = f" (and {len(changes) - 1} more difference(s))" if len(changes) > 1 else ""
    return f"README sample is stale: {what}{more}; regenerate: python scripts/readme_samples.py"


# -- the command -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the README's sample no longer has the shape of today's output",
    )
    parser.add_argument("readme", nargs="?", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    path: Path = args.readme
    try:
        readme = path.read_text(encoding="utf-8")
        current = run_sample(sample_source(readme))
        if args.check:
            problem = shape_difference(read_sample(readme), current)
            if problem is not None:
                print(f"{path}: {problem}", file=sys.stderr)
                return 1
            print(f"{path}: the sample has the shape of today's output")
            return 0
        updated = replace_sample(readme, current)
        if updated != readme:
            atomic_write(path, updated)
        lines = len(current.splitlines())
        print(f"{path}: sample {'rewritten' if updated != readme else 'unchanged'} ({lines} lines)")
        return 0
    except SampleError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
