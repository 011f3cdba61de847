"""Testing tools: the store conformance suite and given/when/then specifications.

``chronik.testing.conformance`` needs pytest and hypothesis (the ``testing`` extra).
"""
