"""`python -m pytest_hwperf.cli`: the `hwperf` command."""

import sys

from pytest_hwperf.cli import main

sys.exit(main())
