"""Testing tools: the store conformance suite and given/when/then specifications.

- :class:`Specification`: a decider or an aggregate, given events, when a command,
  then the events it decides (no store);
- :class:`ProjectionSpec`: a projection, given events, then its read model;
- :class:`ProcessManagerSpec`: a process manager, given a history, when events
  arrive, then the events it appends (on a memory store, with the real runner).

``chronik.testing.conformance`` needs pytest and hypothesis (the ``testing`` extra).
"""

from chronik.testing.process_managers import ProcessManagerSpec
from chronik.testing.projections import ProjectionSpec
from chronik.testing.specs import Specification

__all__ = ["ProcessManagerSpec", "ProjectionSpec", "Specification"]
