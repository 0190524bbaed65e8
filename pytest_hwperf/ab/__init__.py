"""Same-run A/B (`--hwperf-against=REF`): the pure parts.

- `refs`: REF to a directory to run the base from (a detached git worktree of the
  commit, or another checkout), and its removal.
- `protocol`: the messages between the head session and the base session.
- `coordinator`: the head's side (a listener, one reader thread, the pairing rules).
- `client`: the base's side.
- `base_process`: the base session's command line and environment, started and ended.
- `pairing`: the one call-out the `hwperf` fixture makes (a protocol).

Nothing here imports pytest; the hooks are `pytest_hwperf/plugin/ab_session.py` and the
measuring is `pytest_hwperf/plugin/ab_measure.py`.
"""
