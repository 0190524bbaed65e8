"""A runtime that cannot be imported: it needs a module that does not exist."""

import hwperf_no_such_module  # noqa: F401
