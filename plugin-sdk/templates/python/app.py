"""{{name}}: a hookshape transform. Sends a short chat message for every JSON
event, and skips documents (XML, CSV...)."""

from hookshape_plugin import PluginError, deliver_json, log, plugin, skip


@plugin
def transform(event, subscription):
    config = subscription.config()
    unknown = set(config) - {"prefix"}
    if unknown:
        raise PluginError(f"invalid plugin config: unknown field `{sorted(unknown)[0]}`")
    if not event.is_json():
        return skip(f"{event.content_type} is not JSON")
    log.info(f"forwarding {event.event_type}")
    prefix = config.get("prefix", "")
    return deliver_json({"text": f"{prefix}{event.event_type} from {event.tenant}", "event": event.json()})
