"""hookshape_plugin: write hookshape webhook transforms in Python.

    from hookshape_plugin import plugin, deliver_json, skip, log

    @plugin
    def transform(event, subscription):
        config = subscription.config()
        ...
        return deliver_json({"text": "..."})

Build with ``componentize-py componentize app -o plugin.wasm`` (the bundled
``componentize-py.toml`` names the world); test with ``pytest`` and
``hookshape_plugin.testing``.
"""

from . import log
from .runtime import plugin
from .types import (
    Deliver,
    Event,
    Failed,
    Outcome,
    PluginError,
    Skip,
    Subscription,
    deliver,
    deliver_json,
    dumps,
    is_json_media_type,
    skip,
)

__all__ = [
    "Deliver",
    "Event",
    "Failed",
    "Outcome",
    "PluginError",
    "Skip",
    "Subscription",
    "deliver",
    "deliver_json",
    "dumps",
    "is_json_media_type",
    "log",
    "plugin",
    "skip",
]
