// {{name}}: a hookshape transform. Sends a short chat message for every JSON
// event, and skips documents (XML, CSV...).

import { PluginError, deliverJson, log, skip } from 'hookshape-plugin';

export function transform(event, subscription) {
  const config = subscription.config();
  const unknown = Object.keys(config).filter((k) => k !== 'prefix');
  if (unknown.length > 0) throw new PluginError(`invalid plugin config: unknown field \`${unknown[0]}\``);
  if (!event.isJson()) return skip(`${event.contentType} is not JSON`);
  log.info(`forwarding ${event.eventType}`);
  const prefix = config.prefix ?? '';
  return deliverJson({ text: `${prefix}${event.eventType} from ${event.tenant}`, event: event.json() });
}
