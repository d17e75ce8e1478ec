"""slack-threshold, in Python: posts a Slack incoming-webhook message when a
number in a JSON event crosses a threshold, and skips the delivery otherwise.

The same ``plugin_config`` and the same output, byte for byte, as the Rust
``plugins/slack-threshold`` (its doc comment describes the keys); the golden
test in ``tests/e2e/languages.rs`` compares the two.
"""

import unicodedata
from decimal import Decimal

from hookshape_plugin import PluginError, deliver_json, log, plugin, skip

OPS = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    "==": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
}

FIELDS = ("pointer", "op", "threshold", "on_missing", "message", "link_pointer", "channel", "username")


@plugin
def transform(event, subscription):
    config = read_config(subscription.config())
    payload = event.payload_value()
    # A document (XML, CSV, ...) has no numbers to point at.
    document = payload if event.is_json() else None
    pointer, op, threshold = config["pointer"], config["op"], config["threshold"]
    try:
        value = read_number(document, pointer)
    except LookupError as found:
        reason = f"no number at {pointer}: {found.args[0]}"
        if config["on_missing"] == "skip":
            return skip(reason)
        raise PluginError(reason) from None
    name = value_name(pointer)
    if not OPS[op](value, threshold):
        return skip(f"{name} {num(value)} is not {op} {num(threshold)}")
    log.info(f"{name} {num(value)} is {op} {num(threshold)}: notifying Slack")
    link = None
    if document is not None:
        found, url = resolve(document, config["link_pointer"])
        if found and isinstance(url, str) and is_linkable(url):
            link = url
        elif found:
            log.warn(f"{config['link_pointer']} holds no http(s) URL, so the message has no link")
    return deliver_json(message(config, event, name, value, link))


def read_config(config):
    """The config with its defaults, or a ``PluginError`` naming the field."""
    for key in config:
        if key not in FIELDS:
            raise PluginError(f"invalid plugin config: unknown field `{key}`, expected one of {', '.join(f'`{f}`' for f in FIELDS)}")
    for key in ("pointer", "op", "threshold"):
        if key not in config:
            raise PluginError(f"invalid plugin config: missing field `{key}`")
    config = {"on_missing": "error", "message": None, "link_pointer": "/report_run_url",
              "channel": None, "username": None, **config}
    for key in ("pointer", "link_pointer"):
        if not isinstance(config[key], str):
            raise PluginError(f"invalid plugin config at `{key}`: expected a string")
    for key in ("message", "channel", "username"):
        if config[key] is not None and not isinstance(config[key], str):
            raise PluginError(f"invalid plugin config at `{key}`: expected a string")
    if config["op"] not in OPS:
        raise PluginError(f"invalid plugin config at `op`: unknown variant `{config['op']}`, expected one of {', '.join(f'`{o}`' for o in OPS)}")
    threshold = config["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise PluginError("invalid plugin config at `threshold`: expected a number")
    config["threshold"] = float(threshold)
    if config["on_missing"] not in ("error", "skip"):
        raise PluginError(f"invalid plugin config at `on_missing`: unknown variant `{config['on_missing']}`, expected `error` or `skip`")
    for key in ("pointer", "link_pointer"):
        if not config[key].startswith("/"):
            raise PluginError(
                f"invalid plugin config at `{key}`: {json_string(config[key])} is not a JSON pointer "
                "(it must start with '/', e.g. \"/rows/0/revenue\")"
            )
    return config


def resolve(document, pointer):
    """RFC 6901, as serde_json's ``Value::pointer``: ``(found, value)``."""
    if pointer == "":
        return True, document
    if not pointer.startswith("/"):
        return False, None
    target = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and is_index(token) and int(token) < len(target):
            target = target[int(token)]
        else:
            return False, None
    return True, target


def is_index(token):
    return token.isascii() and token.isdigit() and not (token.startswith("0") and len(token) > 1)


def read_number(document, pointer):
    """The number at ``pointer``; a ``LookupError`` with what was found instead."""
    if document is None:
        raise LookupError("the payload is not JSON")
    found, value = resolve(document, pointer)
    if not found:
        raise LookupError("nothing there")
    if isinstance(value, bool):
        raise LookupError(f"found boolean {'true' if value else 'false'}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        raise LookupError(f"found string {json_string(value)}")
    if value is None:
        raise LookupError("found null")
    raise LookupError("found an array" if isinstance(value, list) else "found an object")


def json_string(text):
    """A string quoted as Rust's ``{:?}`` does for the usual cases."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def value_name(pointer):
    """The pointer's last segment, unescaped; the whole pointer for an array index."""
    last = pointer.rsplit("/", 1)[-1]
    if last == "" or (last.isascii() and last.isdigit()):
        return pointer
    return last.replace("~1", "/").replace("~0", "~")


def num(value):
    """A number as people (and Rust's ``f64`` Display) write it: ``96410``, not ``96410.0``."""
    return format(Decimal(repr(value)).normalize(), "f")


def is_linkable(url):
    """A web URL that cannot break out of Slack's ``<url|label>`` syntax."""
    return url.startswith(("https://", "http://")) and not any(
        c.isspace() or unicodedata.category(c) == "Cc" or c == "|" for c in url
    )


def escape(text):
    """The three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(config, event, name, value):
    template = config["message"]
    if template is None:
        return event.event_type
    for key, text in (("{name}", name), ("{value}", num(value)), ("{op}", config["op"]),
                      ("{threshold}", num(config["threshold"])), ("{event_type}", event.event_type),
                      ("{tenant}", event.tenant)):
        template = template.replace(key, text)
    return template


def message(config, event, name, value, link):
    """The incoming-webhook body."""
    title = escape(headline(config, event, name, value))
    name = escape(name)
    op, figure, threshold = escape(config["op"]), num(value), num(config["threshold"])
    context = [escape(event.event_type), escape(event.tenant)]
    if link is not None:
        context.insert(0, f"<{escape(link)}|Open>")
    body = {
        "text": f"{title}: {name} is {figure} ({op} {threshold})",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{name} is *{figure}* ({op} {threshold})"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }
    for key in ("channel", "username"):
        if config[key] is not None:
            body[key] = config[key]
    return body
