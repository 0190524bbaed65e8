"""Profiling what fails: the tools' names (cheap) and taking a profile (on demand)."""
