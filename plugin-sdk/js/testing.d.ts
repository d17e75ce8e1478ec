// Types of hookshape-plugin/testing (testing.js): the host stand-in for `node --test`.
import { Event, Failed, Outcome, Transform } from './index.js';

export interface Report {
  outcome: Outcome | Failed;
  logs: [string, string][];
}

export function event(eventType: string, contentType?: string, payload?: Uint8Array | string | unknown, tenant?: string): Event;
export function sampleEvent(pathOrText: string, tenant?: string): Event;
export function run(transform: Transform, event: Event, config?: unknown, url?: string): Report;
export function deliveredJson(report: Report): any;
export function skipped(report: Report): string;
export function failed(report: Report): string;
