"""Decisions per second with Dynamic Consistency Boundaries: chronik against ``eventsourcing.dcb``.

``python -m benchmarks.dcb`` (``--help`` for the options; ``make bench`` runs it too,
and ``python -m benchmarks --only dcb`` alone). The same course-subscription decision
runs on every contender (``workloads``), on fresh stores, in processes of their own:

- ``contenders``: chronik's store, chronik's ``DCBCommandHandler`` (``handler``, a
  labelled row) and eventsourcing.dcb's recorder behind one interface
- ``workloads``: the decision, the disjoint and the contended workloads, the rules
  checked afterwards
- ``job``: one job (set-up, writers released at once, the check) in its own process
- ``runner``: the plan, the alternation, medians, ratios and the scaling series
- ``report``: tables, ``dcb.json`` and ``dcb.md``
"""
