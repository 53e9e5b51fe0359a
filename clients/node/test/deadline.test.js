'use strict';
// Unary calls have a deadline (30 s unless the client or the call names another): a server
// that never answers fails the call with DEADLINE_EXCEEDED instead of leaving it pending
// for ever (it had none at all).

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client, DEFAULT_TIMEOUT_MS, grpc, loadPackage } = require('../index.js');

async function silentServer() {
  const server = new grpc.Server();
  const v1 = loadPackage();
  server.addService(v1.RealmService.service, { GetRealm() {}, ListRealms() {} }); // no answer
  server.addService(v1.BucketService.service, { UploadBlob() {} }); // takes, never answers
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return { server, target: `127.0.0.1:${port}` };
}

test('a unary call to a server that never answers ends at its deadline', async () => {
  assert.equal(DEFAULT_TIMEOUT_MS, 30000);
  const { server, target } = await silentServer();
  const dc = new Client(target, { timeoutMs: 300 });
  try {
    const started = Date.now();
    await assert.rejects(dc.realms.ListRealms({}), { code: grpc.status.DEADLINE_EXCEEDED });
    assert.ok(Date.now() - started < 5000);
    // The call's own deadline wins over the client's.
    const quick = Date.now();
    await assert.rejects(dc.realms.GetRealm({ id: 'us' }, { timeoutMs: 100 }), {
      code: grpc.status.DEADLINE_EXCEEDED,
    });
    assert.ok(Date.now() - quick < 2000);
  } finally {
    dc.close();
    server.forceShutdown();
  }
});

test("an upload has no deadline unless the call names one (not the client's)", async () => {
  const { server, target } = await silentServer();
  const dc = new Client(target, { timeoutMs: 200 });
  try {
    const upload = dc.buckets.UploadBlob([{ header: { bucket_id: 'b', blob_id: 'x' } }]);
    const outcome = await Promise.race([
      upload.then(
        () => 'answered',
        (error) => error.code,
      ),
      new Promise((resolve) => setTimeout(() => resolve('pending'), 1000)),
    ]);
    assert.equal(outcome, 'pending', "the client's 200 ms are for unary calls");
    await assert.rejects(dc.buckets.UploadBlob([{ header: { bucket_id: 'b', blob_id: 'y' } }], { timeoutMs: 200 }), {
      code: grpc.status.DEADLINE_EXCEEDED,
    });
  } finally {
    dc.close();
    server.forceShutdown();
  }
});
