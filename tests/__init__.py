"""The tests of chronik (a package only so that mypy tells tests/conftest.py from the others)."""
