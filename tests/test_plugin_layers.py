"""The order of the pytest layer's own modules (issue 11), checked from the source.

`hooks` (the entry point) wires everything; the session, the fixtures, the options and
the markers never import it, and find each other's state through typed stash keys kept
beside their owners (never by plugin name):

    hooks -> {session, pool_fixture, fixtures, options, markers}
    session -> {fixtures, markers, options, ...its own helpers}
    pool_fixture -> {fixtures, markers, options}
    fixtures -> {markers, options, suspects}
    suspects -> {markers}
    markers, options -> no other plugin module

Counted are all imports, those under `if TYPE_CHECKING:` too.
"""

from __future__ import annotations

import pytest
from test_layers import imports_of, modules

PLUGIN = "pytest_hwperf.plugin"

# module -> the plugin modules it may import (modules not listed: see the tests below)
ALLOWED: dict[str, frozenset[str]] = {
    "markers": frozenset(),
    "options": frozenset(),
    "suspects": frozenset({"markers"}),
    "fixtures": frozenset({"markers", "options", "suspects"}),
    "pool_fixture": frozenset({"fixtures", "markers", "options"}),
}


def plugin_imports(module: str) -> set[str]:
    """The plugin modules (short names) that `pytest_hwperf.plugin.<module>` imports."""
    found = set()
    for imp in imports_of(f"{PLUGIN}.{module}"):
        for target in imp.targets:
            if target.startswith(f"{PLUGIN}."):
                found.add(target.split(".")[2])
    found.discard(module)
    return found


def plugin_modules() -> list[str]:
    return sorted(m.split(".")[2] for m in modules() if m.startswith(f"{PLUGIN}."))


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_a_lower_plugin_module_imports_only_those_below_it(module):
    extra = plugin_imports(module) - ALLOWED[module]
    assert not extra, f"plugin.{module} imports plugin.{', plugin.'.join(sorted(extra))}"


def test_only_hooks_imports_the_session_and_nothing_imports_hooks():
    offenders = [
        f"plugin.{module} imports plugin.{target}"
        for module in plugin_modules()
        for target in sorted(plugin_imports(module) & {"hooks", "session"})
        if not (module == "hooks" and target == "session")
    ]
    assert not offenders, "\n".join(offenders)


def test_the_grab_bag_of_keys_is_gone():
    assert "keys" not in plugin_modules()
