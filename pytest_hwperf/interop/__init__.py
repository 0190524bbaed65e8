"""Interoperation with other pytest plugins (pytest-benchmark)."""
