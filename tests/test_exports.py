"""The public surface: ``dynscaling.__all__`` is exactly the package's public names (after httpx's
``tests/test_exported_members.py``)."""

from __future__ import annotations

import types

import dynscaling


def public_names() -> list[str]:
    """Names a user can reach as ``dynscaling.X``: not private, and not a submodule (those are imported as
    ``dynscaling.engine`` and so on, not re-exported)."""
    return [name for name, value in vars(dynscaling).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)]


class TestExportedMembers:
    def test_every_name_in_all_exists(self) -> None:
        missing = [name for name in dynscaling.__all__ if not hasattr(dynscaling, name)]
        assert missing == []

    def test_all_has_no_duplicates(self) -> None:
        assert len(set(dynscaling.__all__)) == len(dynscaling.__all__)

    def test_every_exported_object_comes_from_dynscaling(self) -> None:
        for name in dynscaling.__all__:
            value = getattr(dynscaling, name)
            if isinstance(value, (type, types.FunctionType)):
                assert value.__module__.startswith("dynscaling."), name

    def test_every_exported_class_and_function_is_in_all(self) -> None:
        ours = [name for name in public_names()
                if getattr(getattr(dynscaling, name), "__module__", "").startswith("dynscaling")]
        assert sorted(set(ours) - set(dynscaling.__all__)) == []

    def test_all_matches_the_public_names_of_the_package(self) -> None:
        assert sorted(dynscaling.__all__) == sorted([*public_names(), "__version__"])

    def test_the_version_is_a_string(self) -> None:
        assert isinstance(dynscaling.__version__, str)
        assert dynscaling.__version__.count(".") >= 1

    def test_star_import_gives_exactly_all(self) -> None:
        namespace: dict[str, object] = {}
        exec("from dynscaling import *", namespace)  # noqa: S102
        assert sorted(k for k in namespace if k != "__builtins__") == sorted(dynscaling.__all__)
