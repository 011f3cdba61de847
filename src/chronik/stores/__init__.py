"""Backends. Each is its own module; none imports another, and the core imports none."""
