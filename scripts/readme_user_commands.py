"""Print the README's "Use it in your project" commands, ready to run against a clone.

`.ci/run` runs them in a fresh virtual environment without torch, so the first section
a new user reads is checked on every change. The clone's path replaces
`./pytest-hwperf`, the path the README tells users to install from.

Usage: python scripts/readme_user_commands.py README.md /path/to/clone > commands.sh
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

SECTION = "## Use it in your project"


def user_commands(readme: str, clone: str) -> str:
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.replace("./pytest-hwperf", shlex.quote(clone))


def main() -> int:
    readme, clone = sys.argv[1:3]
    print(user_commands(Path(readme).read_text(encoding="utf-8"), clone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
