"""Loading a script of ``benchmarks/`` as a module, for the tests of its arithmetic: the scripts are run as files,
not installed, so they are loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as the module ``<name>_benchmark``, loaded once per process. It is registered in
    ``sys.modules`` before it runs: dataclasses look their module up there, and a script that loads another
    (``known_shares.py`` loads ``allocation.py``) then finds the same module object."""
    module_name = f"{name}_benchmark"
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
