#!/usr/bin/env python3
"""Render the example project's HTML report in headless Chromium and check that it is
self-contained: no request leaves the page and nothing is refused.

    .venv/bin/python scripts/render_html.py [--runs N] [--out DIR] [--screenshot PNG]

Runs `pytest --hwperf example_project` N times (default 3) with the repository's
virtualenv against a scratch baseline folder (seeded with the example project's
committed baselines, if any): the first N-1 runs save a baseline and fill the run
history, the last writes `--hwperf-html` and `--hwperf-json` to DIR (default
build/html-report), so the page shows comparisons and trends. Then Chromium loads the
page and takes the screenshot (default docs/html-report.png, 1280x2000).

How a problem is seen (Chromium 156, `--enable-logging=stderr --v=1`): the report's
Content-Security-Policy makes the browser refuse any external reference and log it as a
console message ("... violates the following Content Security Policy directive ... The
action has been blocked"; older versions say "Refused to ..."); every network request is
logged by the network delegate (`NotifyBeforeURLRequest: URL`) and every file the page
loads by the file loader (`FileURLLoader::Start: URL`). Any console message, any file
but the page, and any request to a host other than Chromium's own services (which it
contacts at start-up whatever the page) is a problem. Exit status 1 on a problem, 2
when the report could not be produced.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"

# Chromium's own start-up traffic (time sync, component updates, account checks,
# dictionaries): logged whatever the page is, so not the page's doing.
CHROMIUM_OWN_HOSTS = ("google.com", "googleapis.com", "gvt1.com", "gstatic.com")

_CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")
_REQUEST = re.compile(r"NotifyBeforeURLRequest: (\S+)")
_FILE = re.compile(r"FileURLLoader::Start: (\S+)")


def chromium_command(
    html: Path, png: Path, *, window: tuple[int, int], profile: Path, binary: str = "chromium"
) -> list[str]:
    return [
        binary,
        "--headless",
        "--no-sandbox",  # needed as root (CI containers)
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=1",
        f"--screenshot={png}",
        f"--window-size={window[0]},{window[1]}",
        html.resolve().as_uri(),
    ]


def _own_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return any(host == own or host.endswith("." + own) for own in CHROMIUM_OWN_HOSTS)


def problems_in_log(log: str, page_url: str) -> list[str]:
    """What the page asked for or had refused, one line each, from Chromium's log."""
    problems: list[str] = []
    for line in log.splitlines():
        if (match := _CONSOLE.search(line)) is not None:
            problems.append(f"console: {match.group(1)[:300]}")
        elif (match := _FILE.search(line)) is not None and match.group(1) != page_url:
            problems.append(f"loaded a local file: {match.group(1)}")
        elif (match := _REQUEST.search(line)) is not None and not _own_host(match.group(1)):
            problems.append(f"network request: {match.group(1)}")
    return problems


def check_in_chromium(
    html: Path,
    png: Path,
    *,
    window: tuple[int, int] = (1280, 2000),
    timeout_s: float = 120.0,
    binary: str = "chromium",
) -> list[str]:
    """Load `html` in headless Chromium, screenshot it to `png`, and return the
    problems seen (empty: the page made no request and had nothing refused)."""
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="hwperf-chromium-") as profile:
        command = chromium_command(html, png, window=window, profile=Path(profile), binary=binary)
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            return [f"chromium did not finish within {timeout_s:g} s"]
    problems = problems_in_log(done.stderr + done.stdout, html.resolve().as_uri())
    if done.returncode != 0:
        problems.append(f"chromium exited with status {done.returncode}")
    if not png.is_file() or png.stat().st_size == 0:
        problems.append(f"no screenshot written to {png}")
    return problems


def _python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def run_example(out: Path, runs: int, scratch: Path) -> Path:
    """Run the example project `runs` times; return the HTML report of the last run."""
    baseline_dir = scratch / ".hwperf"
    committed = EXAMPLE / ".hwperf" / "baselines"
    if committed.is_dir():
        shutil.copytree(committed, baseline_dir / "baselines")
    html = out / "report.html"
    html.unlink(missing_ok=True)
    base = [_python(), "-m", "pytest", "--hwperf", "example_project", "-q", "-p", "no:randomly"]
    base += ["-p", "no:cacheprovider", f"--hwperf-baseline-dir={baseline_dir}"]
    for run in range(1, runs + 1):
        last = run == runs
        extra = (
            [f"--hwperf-html={html}", f"--hwperf-json={out / 'report.json'}"]
            if last
            else ["--hwperf-save"]
        )
        print(f"run {run}/{runs}: pytest --hwperf example_project {' '.join(extra)}", flush=True)
        done = subprocess.run([*base, *extra], cwd=ROOT, capture_output=True, text=True)
        # 1 is a test that failed (a budget on a busy machine): the report is still due.
        if done.returncode not in (0, 1):
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise RuntimeError(f"pytest exited with status {done.returncode}")
        if last:
            print("\n".join(done.stdout.strip().splitlines()[-4:]))
    if not html.is_file():
        raise RuntimeError(f"pytest wrote no HTML report to {html}")
    return html


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="example project runs (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "html-report")
    parser.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "html-report.png")
    parser.add_argument("--height", type=int, default=2000, help="window height (default 2000)")
    args = parser.parse_args(argv)
    if shutil.which("chromium") is None:
        print("chromium is not on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hwperf-example-") as scratch:
        try:
            html = run_example(args.out, max(1, args.runs), Path(scratch))
        except (RuntimeError, OSError) as exc:
            print(f"render_html: {exc}", file=sys.stderr)
            return 2
    problems = check_in_chromium(html, args.screenshot, window=(1280, args.height))
    print(f"report: {html} ({html.stat().st_size:,} bytes)")
    print(f"screenshot: {args.screenshot}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("no request made, nothing refused" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
