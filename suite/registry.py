"""Named plugins, registered lazily as "module:attr" strings and imported on first use.

Each registry has a home module holding its registration lines; it is imported the first
time the registry is asked for a name, so `import suite` stays cheap and a plugin whose
optional library is missing breaks nothing but itself.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from suite.errors import SuiteError


def did_you_mean(name: str, known: list[str]) -> str:
    """The hint that follows an unknown name: the closest known names, or all of them."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:
        return f" (did you mean {' or '.join(close)}?)"
    return f" (known: {', '.join(sorted(known))})" if known else " (none available)"


def missing_extra(modules: tuple[str, ...], extra: str) -> str | None:
    """Why a plugin cannot run: the modules it imports that are not installed, and the pyproject
    extra that installs them; None when all are there. (Looks them up without importing them.)"""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return f"needs {', '.join(missing)}: pip install -c constraints.txt '.[{extra}]'" if missing else None


class UnknownName(SuiteError, ValueError):
    """An unknown plugin name. A ValueError too, so validators can raise it as they are."""


class Registry:
    def __init__(self, kind: str, home: str):
        self.kind = kind
        self._home = home
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}
        self._home_imported = False

    def register(self, name: str, target: str) -> None:
        """Add `name`, pointing at "module:attr"; nothing is imported until it is used."""
        if name in self._targets:
            raise ValueError(f"duplicate {self.kind} name {name!r} ({self._targets[name]} and {target})")
        if target.count(":") != 1:
            raise ValueError(f"{self.kind} {name!r}: target must be 'module:attr', got {target!r}")
        self._targets[name] = target

    def names(self) -> list[str]:
        self._import_home()
        return sorted(self._targets)

    def target(self, name: str) -> str:
        self.check(name)
        return self._targets[name]

    def check(self, name: str) -> None:
        """Raise UnknownName, with the closest valid names, unless `name` is registered."""
        if name not in self.names():
            raise UnknownName(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}")

    def get(self, name: str) -> Any:
        """The registered object, imported on first use."""
        if name not in self._loaded:
            module_name, attr = self.target(name).split(":")
            self._loaded[name] = getattr(importlib.import_module(module_name), attr)
        return self._loaded[name]

    def _import_home(self) -> None:
        if not self._home_imported:
            self._home_imported = True
            importlib.import_module(self._home)


MODELS = Registry("model", home="models")
DATASETS = Registry("dataset", home="suite.datasets")
BACKENDS = Registry("backend", home="suite.backends")
METHODS = Registry("compression method", home="suite.compress")
TASKS = Registry("task", home="suite.tasks")
