"""Every activity a worker registers: discovered in every module of the ``activities`` package."""

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import activities


def _discover() -> list[Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for info in sorted(pkgutil.iter_modules(activities.__path__), key=lambda m: m.name):
        if info.name in ("registry", "catalog", "resources") or info.ispkg:
            continue
        module = importlib.import_module(f"activities.{info.name}")
        for value in vars(module).values():
            defn = getattr(value, "__temporal_activity_definition", None)
            if defn is not None and getattr(value, "__module__", None) == module.__name__:
                found.setdefault(defn.name, value)
    return [found[name] for name in sorted(found)]


ACTIVITIES = _discover()
