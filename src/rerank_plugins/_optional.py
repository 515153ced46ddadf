"""Optional dependencies: check for them and explain how to install them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from rerank_plugins.errors import MissingDependencyError


def is_available(module: str) -> bool:
    """Return whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(
    module: str, *, extra: str | None, feature: str, package: str | None = None
) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip command.

    ``extra`` is the rerank-plugins extra that installs it (None: a core dependency, named
    itself). Only a missing top-level module is turned into ``MissingDependencyError``; an
    ``ImportError`` raised inside an installed package propagates unchanged.
    """
    if not is_available(module):
        name = package or module
        command = f'"rerank-plugins[{extra}]"' if extra else name
        msg = (
            f"{feature} needs {name!r}, which is not installed. "
            f"Install it with: pip install {command}"
        )
        raise MissingDependencyError(msg, name=module)
    return importlib.import_module(module)
