// The Rust slack-threshold's unit tests, on the JavaScript port (same inputs, same answers).

import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Deliver } from 'hookshape-plugin';
import { deliveredJson, event, failed, run, sampleEvent, skipped } from 'hookshape-plugin/testing';

import { num, transform } from '../plugin.js';

const SAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', 'samples');
const RUN_URL = 'https://studio.example.com/api/acme/reports/9f2c41/runs/b7d0e3';

const reportRun = () => sampleEvent(join(SAMPLES, 'analyst-studio-report-run-completed.json'), 'analyst-studio');
const on = (ev, config) => run(transform, ev, config);
const at = (type, contentType, payload) => event(type, contentType, payload, 'analyst-studio');
const revenue = (row, op, threshold) => ({ pointer: `/rows/${row}/revenue`, op, threshold });

test('crossing the threshold delivers a Slack message', () => {
  const report = on(reportRun(), { ...revenue(0, '>', 100000), message: 'Daily revenue crossed the line' });
  const body = deliveredJson(report);
  assert.equal(body.text, 'Daily revenue crossed the line: revenue is 128450.5 (&gt; 100000)');
  assert.deepEqual(body.blocks[0], { type: 'section', text: { type: 'mrkdwn',
    text: '*Daily revenue crossed the line*\nrevenue is *128450.5* (&gt; 100000)' } });
  assert.deepEqual(body.blocks[1], { type: 'context', elements: [{ type: 'mrkdwn',
    text: `<${RUN_URL}|Open> · report_run_completed · analyst-studio` }] });
  assert.ok(!('channel' in body) && !('username' in body));
  assert.deepEqual(report.logs, [['info', 'revenue 128450.5 is > 100000: notifying Slack']]);
});

test('staying under the threshold skips with the reason', () => {
  assert.equal(skipped(on(reportRun(), revenue(1, '>', 100000))), 'revenue 96410 is not > 100000');
  assert.equal(skipped(on(reportRun(), revenue(0, '<=', 128450))), 'revenue 128450.5 is not <= 128450');
});

test('every operator compares as written', () => {
  const cases = [['>', 96410, false], ['>=', 96410, true], ['<', 96410, false], ['<=', 96410, true],
    ['==', 96410, true], ['!=', 96410, false], ['<', 100000, true], ['!=', 1, true]];
  for (const [op, threshold, delivers] of cases) {
    const { outcome } = on(reportRun(), revenue(1, op, threshold));
    assert.equal(outcome instanceof Deliver, delivers, `96410 ${op} ${threshold}`);
  }
});

test('headline placeholders and overrides are applied', () => {
  const body = deliveredJson(on(reportRun(), { pointer: '/rows/0/orders', op: '>=', threshold: 1000,
    message: '{tenant}: {name} {value} {op} {threshold} on {event_type} <&>', channel: '#revenue', username: 'hookshape' }));
  assert.equal(body.text,
    'analyst-studio: orders 1310 &gt;= 1000 on report_run_completed &lt;&amp;&gt;: orders is 1310 (&gt;= 1000)');
  assert.equal(body.channel, '#revenue');
  assert.equal(body.username, 'hookshape');
});

test('default headline is the event type and links are optional', () => {
  const config = { pointer: '/a~1b/c~0d', op: '<', threshold: 0, link_pointer: '/link' };
  const body = deliveredJson(on(at('metric', 'application/json', { 'a/b': { 'c~d': -2.5 }, link: 'javascript:alert(1)' }), config));
  assert.equal(body.text, 'metric: c~d is -2.5 (&lt; 0)');
  assert.equal(body.blocks[1].elements[0].text, 'metric · analyst-studio');
});

test('array index names use the whole pointer', () => {
  const config = { pointer: '/values/1', op: '>', threshold: 5 };
  assert.equal(skipped(on(at('m', 'application/json', '{"values": [9, 3]}'), config)), '/values/1 3 is not > 5');
});

test('missing or non-numeric values are errors by default', () => {
  const payload = '{"rows": [{"revenue": "abc"}, {"revenue": null}]}';
  const missing = (pointer) => failed(on(at('report_run_completed', 'application/json', payload), { pointer, op: '>', threshold: 1 }));
  assert.equal(missing('/rows/0/revenue'), 'no number at /rows/0/revenue: found string "abc"');
  assert.equal(missing('/rows/1/revenue'), 'no number at /rows/1/revenue: found null');
  assert.equal(missing('/rows/2/revenue'), 'no number at /rows/2/revenue: nothing there');
  assert.equal(missing('/rows'), 'no number at /rows: found an array');
});

test('on_missing skip turns those errors into skips', () => {
  const config = { pointer: '/rows/5/revenue', op: '>', threshold: 1, on_missing: 'skip' };
  assert.equal(skipped(on(reportRun(), config)), 'no number at /rows/5/revenue: nothing there');
  assert.equal(skipped(on(at('project.published', 'application/xml', '<project/>'), config)),
    'no number at /rows/5/revenue: the payload is not JSON');
});

test('payloads that do not match their content type fail even with on_missing skip', () => {
  const config = { pointer: '/rows/0/revenue', op: '>', threshold: 1, on_missing: 'skip' };
  const notText = failed(on(at('upload', 'application/octet-stream', new Uint8Array([0xff])), config));
  assert.ok(notText.startsWith('the event payload is not UTF-8 text'), notText);
  assert.ok(failed(on(at('m', 'application/json', '{"rows": ['), config)).startsWith('invalid event payload'));
});

test('bad config names the field', () => {
  const badOp = failed(on(reportRun(), { pointer: '/rows/0/revenue', op: '=>', threshold: 1 }));
  assert.ok(badOp.startsWith('invalid plugin config at `op`: unknown variant `=>`'), badOp);
  assert.ok(failed(on(reportRun(), { op: '>', threshold: 1 })).includes('missing field `pointer`'));
  assert.equal(failed(on(reportRun(), { pointer: 'rows/0', op: '>', threshold: 1 })),
    'invalid plugin config at `pointer`: "rows/0" is not a JSON pointer (it must start with \'/\', e.g. "/rows/0/revenue")');
  assert.ok(failed(on(reportRun(), { pointer: '/a', op: '>', threshold: '100k' })).startsWith('invalid plugin config at `threshold`'));
  assert.ok(failed(on(reportRun(), { pointer: '/a', op: '>', threshold: 1, treshold: 2 })).includes('unknown field `treshold`'));
});

test('numbers print without a trailing zero fraction or an exponent', () => {
  assert.equal(num(96410), '96410');
  assert.equal(num(128450.5), '128450.5');
  assert.equal(num(-0.25), '-0.25');
  assert.equal(num(1e16), '10000000000000000');
  assert.equal(num(1e21), '1000000000000000000000');
  assert.equal(num(1.5e-7), '0.00000015');
  assert.equal(num(-0), '-0');
});
