"""The ``@plugin`` decorator: makes a Python function the component's ``transform`` export.

componentize-py calls a class named ``WitWorld`` in the app module; ``@plugin``
defines it there. Every exception becomes an ``err``, so a failing transform
says why in the attempt's ``error`` instead of trapping: a ``PluginError``
carries its message alone, anything else its type, message and the last
traceback lines.
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable, Union

from .types import Deliver, Event, Failed, Outcome, PluginError, Skip, Subscription

Transform = Callable[[Event, Subscription], Outcome]

TRACEBACK_FRAMES = 3
"""How many innermost frames an unexpected exception's message keeps."""


def call(transform: Transform, event: Event, subscription: Subscription) -> Union[Outcome, Failed]:
    """Runs ``transform`` as hookshape would: what it returned, or why it failed."""
    try:
        outcome = transform(event, subscription)
    except PluginError as e:
        return Failed(str(e))
    except Exception as e:  # noqa: BLE001 - every failure must become an `err`
        return Failed(describe(e))
    if not isinstance(outcome, (Deliver, Skip)):
        return Failed(
            f"transform returned {type(outcome).__name__}, not a request "
            "(deliver_json(...), deliver(...)) or skip(reason)"
        )
    return outcome


def describe(error: BaseException) -> str:
    """``Type: message``, then the innermost traceback frames."""
    lines = traceback.format_exception_only(type(error), error)[-1].rstrip("\n")
    frames = traceback.extract_tb(error.__traceback__)[-TRACEBACK_FRAMES:]
    for frame in frames:
        lines += f'\n  File "{frame.filename}", line {frame.lineno}, in {frame.name}'
        if frame.line:
            lines += f"\n    {frame.line}"
    return lines


def plugin(transform: Transform) -> Transform:
    """Makes ``transform(event, subscription)`` the plugin. Returns it unchanged,
    so tests call it directly or through ``hookshape_plugin.testing.run``."""
    module = sys.modules[transform.__module__]
    module.WitWorld = _world(transform)  # type: ignore[attr-defined]
    return transform


def _world(transform: Transform) -> type:
    class WitWorld:
        """The export componentize-py binds to ``transform``."""

        def transform(self, event, subscription):
            from componentize_py_types import Err  # type: ignore
            from wit_world.imports import types as wit  # type: ignore

            outcome = call(
                transform,
                Event(
                    event.id,
                    event.tenant,
                    event.event_type,
                    event.timestamp,
                    event.content_type,
                    bytes(event.payload),
                ),
                Subscription(subscription.id, subscription.url, subscription.config),
            )
            if isinstance(outcome, Failed):
                raise Err(outcome.message)
            if isinstance(outcome, Skip):
                return wit.Outcome_Skip(outcome.reason)
            request = wit.Request(outcome.body, outcome.content_type, list(outcome.headers))
            return wit.Outcome_Deliver(request)

    return WitWorld
