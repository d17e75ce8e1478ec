"""Log lines kept on the delivery attempt (the host's ``log`` import).

In a WebAssembly build they go to hookshape; under ``pytest`` they are
collected by ``hookshape_plugin.testing.run`` (and printed to stderr).
"""

from __future__ import annotations

import sys
from typing import Callable, List, Optional, Tuple

LEVELS = ("trace", "debug", "info", "warn", "error")

try:  # Only present inside a component built by componentize-py.
    from wit_world.imports import host as _host  # type: ignore
except ImportError:
    _host = None

_captured: Optional[List[Tuple[str, str]]] = None
"""The host stand-in's lines while ``testing.run`` runs a transform."""


def _emit(level: str, message: str) -> None:
    message = str(message)
    if _host is not None:
        _host.log(_host.Level[level.upper()], message)
        return
    if _captured is not None:
        _captured.append((level, message))
    print(f"[{level}] {message}", file=sys.stderr)


def _at(level: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        _emit(level, message)

    log.__name__ = level
    log.__doc__ = f"A ``{level}`` line kept on the delivery attempt."
    return log


trace = _at("trace")
debug = _at("debug")
info = _at("info")
warn = _at("warn")
error = _at("error")
