'use strict';
// The credentials stay out of what util.inspect (console.log) shows of a client and of its
// metadata, which still carries them to every call. No server needed.

const test = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const { Client } = require('../index.js');

test('inspecting a client or its metadata shows no credentials', () => {
  const dc = new Client('127.0.0.1:1', { username: 'mockuser', password: 's3cr3t-password', driver: 'mock' });
  try {
    const basic = `Basic ${Buffer.from('mockuser:s3cr3t-password').toString('base64')}`;
    for (const shown of [util.inspect(dc, { depth: 8 }), util.inspect(dc.metadata, { showHidden: true })]) {
      assert.ok(!shown.includes(basic.slice(6)), shown);
      assert.ok(!shown.includes('s3cr3t-password'), shown);
    }
    assert.match(util.inspect(dc.metadata), /authorization: '\[redacted\]'/);
    assert.match(util.inspect(dc.metadata), /'x-deltacloud-driver': 'mock'/);
    assert.deepEqual(dc.metadata.get('authorization'), [basic]); // still sent with each call
  } finally {
    dc.close();
  }
});

test('JSON.stringify of the metadata shows no credentials either', () => {
  const dc = new Client('127.0.0.1:1', { username: 'mockuser', password: 's3cr3t-password', driver: 'mock' });
  try {
    const shown = JSON.stringify({ metadata: dc.metadata });
    assert.ok(!shown.includes(Buffer.from('mockuser:s3cr3t-password').toString('base64')), shown);
    assert.deepEqual(JSON.parse(shown).metadata, { 'x-deltacloud-driver': 'mock', authorization: '[redacted]' });
  } finally {
    dc.close();
  }
});
