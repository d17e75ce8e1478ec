// Types of hookshape-plugin (index.js). The WIT world is wit/world.wit.

/** An expected failure: the attempt fails as `transform_failed` with exactly this message. */
export class PluginError extends Error {}

/** The event as ingested (the WIT `event` record). */
export class Event {
  /** hookshape's id (`evt_...`), also the `webhook-id` header. */
  readonly id: string;
  readonly tenant: string;
  readonly eventType: string;
  /** Ingest time, RFC 3339 UTC. */
  readonly timestamp: string;
  readonly contentType: string;
  /** JSON text for JSON content types, else the document itself. */
  readonly payload: Uint8Array;
  /** `application/json` or any `+json` media type. */
  isJson(): boolean;
  /** The payload as text; a `PluginError` when it is not UTF-8. */
  text(): string;
  /** The payload parsed as JSON; a `PluginError` saying why when it is not. */
  json(): unknown;
  /** The parsed JSON payload, or the document (XML, CSV...) as a string. */
  payloadValue(): unknown;
}

/** The subscription the transform runs for (the WIT `subscription` record). */
export class Subscription {
  readonly id: string;
  readonly url: string;
  /** The `plugin_config` as JSON text (`{}` when unset). */
  readonly configJson: string;
  /** The `plugin_config`, parsed (`{}` when unset). */
  config(): Record<string, unknown>;
}

/** Send this request. */
export class Deliver {
  body: Uint8Array;
  /** `null` sends `application/json`. */
  contentType: string | null;
  headers: [string, string][];
  /** Adds a header; returns the request, for chaining. */
  header(name: string, value: string): Deliver;
  /** The body parsed as JSON (for tests). */
  json(): unknown;
}

/** Send nothing; the delivery ends as `skipped` with this reason. */
export class Skip {
  readonly reason: string;
}

/** A failed call, with the message hookshape records. */
export class Failed {
  readonly message: string;
}

/** What a transform returns. */
export type Outcome = Deliver | Skip;

/** The plugin's export: throw to fail the attempt. */
export type Transform = (event: Event, subscription: Subscription) => Outcome;

export function deliver(body: Uint8Array | string, contentType?: string | null, headers?: [string, string][]): Deliver;
/** `value` as JSON, compact with sorted keys, as hookshape's Rust plugins write it. */
export function deliverJson(value: unknown, headers?: [string, string][]): Deliver;
export function skip(reason: string): Skip;
export function dumps(value: unknown): string;
export function isJsonMediaType(contentType: string): boolean;
export function jsonType(value: unknown): string;
/** `Name: message`, then the innermost stack frames. */
export function describe(error: unknown): string;
/** Runs `transform` as hookshape would. */
export function call(transform: Transform, event: Event, subscription: Subscription): Outcome | Failed;

type Log = (message: string) => void;
/** Log lines kept on the delivery attempt. */
export const log: { trace: Log; debug: Log; info: Log; warn: Log; error: Log };
export function setLogSink(sink: (level: string, message: string) => void): (level: string, message: string) => void;
/** The component's export, as the build's entry module makes it. */
export function component(transform: Transform, hostLog: (level: string, message: string) => void): unknown;
