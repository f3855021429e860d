"""The rows of ``scripts/bench.py``, one module per group, sharing one timer and one report.

Layout (run it through ``scripts/bench.py``, the entry point; it puts the
repository on ``sys.path`` before importing this package):

- ``timing``    the one timer: interleaved rounds, per-op seconds, percentiles,
                the one duration format.
- ``fixtures``  what rows stand on: the project name, scene bodies, the bare
                durable-append primitive, large logs built without fsync.
- ``report``    the one row type, the Markdown table and docs/PERFORMANCE.md.
- ``append``    rows 1, 2a, 2b: single-writer and candidate appends.
- ``contention`` rows 3a-3c: contending processes (``bench.py --worker``).
- ``reads``     rows 4, 5, 6: fold, manifest read, ``pending``.
- ``watch``     row 7: watcher latency and idle CPU.
- ``peers``     rows 8a-8c: eventsourcing + SQLite (8c: the lazy view policy).
- ``policy``    rows 9-11: append, 4 contending processes and manifest reads
                under each view policy (sync, lazy, off).
- ``startup``   row 12: ``gate``, ``show`` and ``add`` as whole processes.
- ``steps``     the one table of steps ``--only`` selects from; a new row is a
                function in a module and one line there (nothing registers
                itself on import).
- ``cli``       the command line of ``scripts/bench.py``.

Invariant of every row: scenelog and its baseline are measured in the same run,
interleaved, and reported as a ratio of medians.
"""
