"""The public API is an explicit, sorted ``__all__`` that matches what the package exports."""

import chronik


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_all_is_sorted_and_unique() -> None:
    assert chronik.__all__ == sorted(set(chronik.__all__), key=_isort_key)


def test_every_exported_name_exists() -> None:
    for name in chronik.__all__:
        assert hasattr(chronik, name), name


def test_no_public_name_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(chronik).items()
        if not name.startswith("_") and not (hasattr(value, "__file__") and name != "testing")
    }
    modules = {name for name, value in vars(chronik).items() if type(value).__name__ == "module"}
    assert public - modules - {"annotations"} == set(chronik.__all__)
