import assert from 'node:assert/strict';
import { test } from 'node:test';

import { deliveredJson, event, run, skipped } from 'hookshape-plugin/testing';

import { transform } from '../plugin.js';

test('JSON events become messages', () => {
  const body = deliveredJson(run(transform, event('order.paid', 'application/json', '{"id": 7}'), { prefix: 'New: ' }));
  assert.equal(body.text, 'New: order.paid from acme');
  assert.deepEqual(body.event, { id: 7 });
});

test('documents are skipped', () => {
  assert.equal(skipped(run(transform, event('report', 'application/xml', '<r/>'))), 'application/xml is not JSON');
});
