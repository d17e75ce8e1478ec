"""The host stand-in: run a transform under plain ``pytest``, without WebAssembly.

``run`` calls the transform exactly as the component's export does (the same
exception-to-error conversion) and collects its log lines; ``event`` and
``sample_event`` build events like hookshape does at ingest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from . import log as _log
from .runtime import Transform, call
from .types import Deliver, Event, Failed, Skip, Subscription, dumps, is_json_media_type


@dataclass
class Report:
    """One call: what the transform answered and the lines it logged."""

    outcome: Union[Deliver, Skip, Failed]
    logs: List[Tuple[str, str]] = field(default_factory=list)


def event(
    event_type: str,
    content_type: str = "application/json",
    payload: Union[bytes, str, Any] = b"{}",
    tenant: str = "acme",
) -> Event:
    """An event; a payload that is neither ``bytes`` nor ``str`` is written as JSON."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    elif not isinstance(payload, bytes):
        payload = dumps(payload)
    return Event(
        id="evt_01TEST0000000000000000000",
        tenant=tenant,
        event_type=event_type,
        timestamp="2026-01-01T00:00:00.000Z",
        content_type=content_type,
        payload=payload,
    )


def sample_event(path_or_text: Union[str, Path], tenant: str = "acme") -> Event:
    """An event from an ingest body (``{"type", "content_type"?, "payload"}``,
    as in hookshape's ``samples/``): a file path or the JSON text."""
    text = str(path_or_text)
    if not text.lstrip().startswith("{"):
        text = Path(text).read_text(encoding="utf-8")
    body = json.loads(text)
    content_type = body.get("content_type", "application/json")
    payload = body["payload"]
    if isinstance(payload, str) and not is_json_media_type(content_type):
        payload = payload.encode("utf-8")
    return event(body["type"], content_type, payload, tenant)


def run(
    transform: Transform,
    event: Event,
    config: Optional[Any] = None,
    url: str = "https://receiver.example/hook",
) -> Report:
    """Runs ``transform`` once with ``config`` as the subscription's ``plugin_config``."""
    subscription = Subscription("sub_test", url, dumps({} if config is None else config).decode())
    lines: List[Tuple[str, str]] = []
    previous, _log._captured = _log._captured, lines
    try:
        outcome = call(transform, event, subscription)
    finally:
        _log._captured = previous
    return Report(outcome, lines)


def delivered_json(report: Report) -> Any:
    """The JSON body of a delivery; fails the test on a skip or an error."""
    assert isinstance(report.outcome, Deliver), f"expected a delivery, got {report.outcome!r}"
    return report.outcome.json()


def skipped(report: Report) -> str:
    """The reason of a skip; fails the test otherwise."""
    assert isinstance(report.outcome, Skip), f"expected a skip, got {report.outcome!r}"
    return report.outcome.reason


def failed(report: Report) -> str:
    """The error message of a failure; fails the test otherwise."""
    assert isinstance(report.outcome, Failed), f"expected an error, got {report.outcome!r}"
    return report.outcome.message
