"""No pydantic plugins in modelbox's own console scripts (:func:`without_pydantic_plugins`)."""

from __future__ import annotations

import functools
import sys
import types

__all__ = ["without_pydantic_plugins"]


def without_pydantic_plugins() -> None:
    """Let pydantic find no plugins in this process, without looking for them.

    pydantic looks for plugins (entry points of the ``pydantic`` group) when it builds its
    first validator: the look-up imports ``importlib.metadata`` (with ``email``, ``zipfile``
    and ``csv``) and reads every installed distribution's metadata, ~15 ms of each write
    (measured; a tenth of a cold ``tag`` at 100,000 versions). A plugin would only observe
    the command's own checks of manifests, so the ``modelbox`` command and the hook scripts
    see none, as with ``PYDANTIC_DISABLE_PLUGINS=__all__`` but without the look-up; the
    Python API never calls this and leaves pydantic as it is (docs/design.md)."""
    name = "pydantic.plugin._loader"  # what pydantic imports get_plugins from, lazily
    if name in sys.modules:
        return
    loader = types.ModuleType(name, "no pydantic plugins in the modelbox command")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]

    @functools.cache
    def real() -> types.ModuleType:
        import importlib.machinery
        import importlib.util

        import pydantic.plugin

        spec = importlib.machinery.PathFinder.find_spec(name, pydantic.plugin.__path__)
        if spec is None or spec.loader is None:
            raise AttributeError(name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def anything_else(attribute: str) -> object:
        # A later pydantic may ask its loader for more: the real module answers (not what
        # the import system probes a module for, `__path__` say).
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(real(), attribute)

    loader.__getattr__ = anything_else  # type: ignore[method-assign]
    sys.modules[name] = loader
