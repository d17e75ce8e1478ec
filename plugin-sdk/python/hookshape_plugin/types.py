"""What a transform sees and answers: the event, the subscription, and the outcome.

These are plain Python classes, the same in a WebAssembly build and under
``pytest``; the ``@plugin`` decorator converts them to and from the WIT
records of ``hookshape:plugin/types``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple, Union


class PluginError(Exception):
    """An expected failure: the attempt fails as ``transform_failed`` with
    exactly this message (no traceback), and is retried."""


@dataclass(frozen=True)
class Event:
    """The event as ingested (the WIT ``event`` record)."""

    id: str
    """hookshape's id (``evt_...``), also the ``webhook-id`` header."""
    tenant: str
    event_type: str
    timestamp: str
    """Ingest time, RFC 3339 UTC."""
    content_type: str
    payload: bytes
    """JSON text for JSON content types, else the document itself."""

    def is_json(self) -> bool:
        """True for ``application/json`` and any ``+json`` media type."""
        return is_json_media_type(self.content_type)

    def text(self) -> str:
        """The payload as text; a ``PluginError`` when it is not UTF-8."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PluginError(f"the event payload is not UTF-8 text: {e}") from None

    def json(self) -> Any:
        """The payload parsed as JSON; a ``PluginError`` saying why when it is not."""
        return _decode_json(self.text(), "event payload")

    def payload_value(self) -> Any:
        """The JSON payload parsed, or the document (XML, CSV...) as a string."""
        return self.json() if self.is_json() else self.text()


@dataclass(frozen=True)
class Subscription:
    """The subscription the transform runs for (the WIT ``subscription`` record)."""

    id: str
    url: str
    config_json: str = "{}"
    """The subscription's ``plugin_config`` as JSON text (``{}`` when unset)."""

    def config(self) -> dict:
        """The ``plugin_config``, parsed: a ``dict`` (``{}`` when unset)."""
        config = _decode_json(self.config_json, "plugin config")
        if not isinstance(config, dict):
            raise PluginError(f"invalid plugin config: expected an object, found {json_type(config)}")
        return config


@dataclass
class Deliver:
    """Send this request to the subscription's URL."""

    body: bytes
    content_type: Optional[str] = "application/json"
    """``None`` sends ``application/json``."""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    """Extra headers, sent after the subscription's."""

    def header(self, name: str, value: str) -> "Deliver":
        """Adds a header; returns the request, for chaining."""
        self.headers.append((name, value))
        return self

    def json(self) -> Any:
        """The body parsed as JSON (for tests)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Skip:
    """Send nothing; the delivery ends as ``skipped`` with this reason."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The transform failed (it raised); the attempt fails with this message."""

    message: str


Outcome = Union[Deliver, Skip]
"""What a transform returns."""


def dumps(value: Any) -> bytes:
    """JSON bytes exactly as hookshape's Rust plugins write them (serde_json):
    compact, object keys sorted, non-ASCII text as UTF-8."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def deliver(body: Union[bytes, str], content_type: Optional[str] = None, headers=()) -> Deliver:
    """A request with this body (``str`` is sent as UTF-8)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Deliver(body, content_type, list(headers))


def deliver_json(value: Any, headers=()) -> Deliver:
    """A request whose body is ``value`` as JSON (see ``dumps``)."""
    return Deliver(dumps(value), "application/json", list(headers))


def skip(reason: str) -> Skip:
    """Send nothing, for this reason."""
    return Skip(str(reason))


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``*/*+json``, parameters and case ignored."""
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _decode_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise PluginError(f"invalid {what}: {e}") from None
