'use strict';
// The resume logic of watchEvents, against fake streams (no server): after a dropped
// stream it subscribes again after the last revision seen, drops repeated events, and
// gives up on errors that are not resumable.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Readable } = require('node:stream');
const protobuf = require('protobufjs');
const { Client, watchEvents, grpc } = require('../index.js');

function event(revision, id = `e${revision}`) {
  return { revision, event_id: id, instance_id: 'inst0', state: 'INSTANCE_STATE_RUNNING' };
}

// A fake stream: yields `messages`, then fails with `code` (or ends when code is undefined).
function fakeStream(messages, code) {
  const stream = new Readable({ objectMode: true, read() {} });
  for (const message of messages) stream.push(message);
  if (code === undefined) stream.push(null);
  else if (code instanceof Error) setImmediate(() => stream.destroy(code));
  else setImmediate(() => stream.destroy(Object.assign(new Error('dropped'), { code })));
  stream.cancel = () => {};
  return stream;
}

// Runs watchEvents over `scripts` (one fake stream per subscription, in order) until it
// throws; returns the revisions it yielded, the requests it made and the error.
async function runScripts(scripts, request = {}) {
  const requests = [];
  const open = (req) => {
    requests.push(req);
    return scripts[requests.length - 1]();
  };
  const got = [];
  let error;
  try {
    for await (const e of watchEvents(open, request, { backoffMs: 1 })) got.push(e.revision);
  } catch (caught) {
    error = caught;
  }
  return { got, requests, error };
}

test('resumes after the last revision seen and drops repeated events', async () => {
  const { got, requests, error } = await runScripts([
    () => fakeStream([{ events: [event(1), event(2)], revision: 2 }], grpc.status.UNAVAILABLE),
    // The server re-sends revision 2 (same event id): it must not be yielded twice.
    () => fakeStream([{ events: [event(2), event(3)], revision: 3 }], grpc.status.INVALID_ARGUMENT),
  ]);
  assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(requests[0].after_revision, undefined);
  assert.equal(requests[1].after_revision, 2);
});

test('a resume names the journal its revision came from', async () => {
  const { got, requests, error } = await runScripts([
    () => fakeStream([{ events: [event(4)], revision: 4, journal_id: 'j1' }], grpc.status.UNAVAILABLE),
    // Another server behind the address: its journal is another, and it says so.
    () => fakeStream([], grpc.status.OUT_OF_RANGE),
  ]);
  assert.equal(error?.code, grpc.status.OUT_OF_RANGE);
  assert.deepEqual(got, [4]);
  assert.equal(requests[0].journal_id, undefined);
  assert.deepEqual([requests[1].after_revision, requests[1].journal_id], [4, 'j1']);
});

test('a watch with a snapshot takes a new one when its history is elsewhere', async () => {
  const snap = (journal, revision) => [
    { events: [event(revision, `snapshot-${journal}-${revision}-inst0`)], revision, journal_id: journal, kind: 'KIND_EVENTS' },
    { events: [], revision, journal_id: journal, kind: 'KIND_SNAPSHOT_COMPLETE' },
  ];
  const { got, requests, error } = await runScripts(
    [
      () => fakeStream(snap('a', 4), grpc.status.UNAVAILABLE),
      () => fakeStream([], grpc.status.OUT_OF_RANGE), // another server behind the address
      () => fakeStream(snap('b', 9), grpc.status.PERMISSION_DENIED),
    ],
    { initial_snapshot: true },
  );
  assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(got, [4, 9]);
  assert.deepEqual(
    requests.map((r) => [r.initial_snapshot, r.after_revision, r.journal_id]),
    [
      [true, undefined, undefined],
      [false, 4, 'a'],
      [true, undefined, undefined],
    ],
  );
});

test('a snapshot cut short is asked for again; position() says where a watch stands', async () => {
  const snapshotEvents = { events: [event(5, 'snapshot-j-5-inst0')], revision: 5, journal_id: 'j', kind: 'KIND_EVENTS' };
  const { got, requests, error } = await runScripts(
    [
      // The stream drops inside the snapshot: no position yet, so the snapshot again.
      () => fakeStream([snapshotEvents], grpc.status.UNAVAILABLE),
      () =>
        fakeStream(
          [snapshotEvents, { events: [], revision: 5, journal_id: 'j', kind: 'KIND_SNAPSHOT_COMPLETE' }],
          grpc.status.PERMISSION_DENIED,
        ),
    ],
    { initial_snapshot: true },
  );
  assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(got, [5]);
  assert.deepEqual(
    requests.map((r) => [r.initial_snapshot, r.after_revision]),
    [
      [true, undefined],
      [true, undefined],
    ],
  );

  const watch = watchEvents(
    () => fakeStream([{ events: [event(3)], revision: 3, journal_id: 'j9', kind: 'KIND_EVENTS' }], grpc.status.INVALID_ARGUMENT),
    {},
    { backoffMs: 1 },
  );
  assert.equal((await watch.next()).value.revision, 3);
  await assert.rejects(watch.next());
  assert.deepEqual(watch.position(), { after_revision: 3, journal_id: 'j9' });
});

test('progress messages move the resume position too', async () => {
  const { got, requests, error } = await runScripts([
    () =>
      fakeStream(
        [{ events: [], revision: 7, kind: 'KIND_PROGRESS' }],
        serverError(grpc.status.RESOURCE_EXHAUSTED, 'SUBSCRIBER_TOO_SLOW'),
      ),
    () => fakeStream([{ events: [event(8)], revision: 8 }], grpc.status.OUT_OF_RANGE),
  ]);
  assert.equal(error?.code, grpc.status.OUT_OF_RANGE);
  assert.deepEqual(got, [8]);
  assert.equal(requests[1].after_revision, 7);
});

test('a watch with a snapshot resumes after it without asking for another', async () => {
  const { got, requests, error } = await runScripts(
    [
      // The stream drops before anything came: the retry asks for the snapshot again.
      () => fakeStream([], grpc.status.UNAVAILABLE),
      () => fakeStream([{ events: [event(1), event(2)], revision: 2 }], grpc.status.UNAVAILABLE),
      () => fakeStream([{ events: [event(3)], revision: 3 }], grpc.status.INVALID_ARGUMENT),
    ],
    { initial_snapshot: true },
  );
  assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
  assert.deepEqual(got, [1, 2, 3]);
  assert.deepEqual(
    requests.map((r) => [r.initial_snapshot, r.after_revision]),
    [
      [true, undefined],
      [true, undefined],
      [false, 2],
    ],
  );
});

test('an abort signal ends the iteration quietly', async () => {
  const controller = new AbortController();
  const open = () => fakeStream([{ events: [event(1)], revision: 1 }]);
  const got = [];
  for await (const e of watchEvents(open, {}, { signal: controller.signal, backoffMs: 1 })) {
    got.push(e.revision);
    controller.abort();
  }
  assert.deepEqual(got, [1]);
});

test('a saved position out of range, with initial_snapshot: a new snapshot, without it', async () => {
  const { got, requests, error } = await runScripts(
    [
      // The saved position is another journal's (or compacted): JOURNAL_MISMATCH.
      () => fakeStream([], grpc.status.OUT_OF_RANGE),
      () =>
        fakeStream(
          [
            { events: [event(9, 'snapshot-b-9-inst0')], revision: 9, journal_id: 'b', kind: 'KIND_EVENTS' },
            { events: [], revision: 9, journal_id: 'b', kind: 'KIND_SNAPSHOT_COMPLETE' },
          ],
          grpc.status.PERMISSION_DENIED,
        ),
    ],
    { after_revision: 4, journal_id: 'a', initial_snapshot: true },
  );
  assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(got, [9]);
  // The server refuses a snapshot together with a revision (INVALID_ARGUMENT).
  assert.deepEqual(
    requests.map((r) => [r.initial_snapshot, r.after_revision, r.journal_id]),
    [
      [false, 4, 'a'],
      [true, undefined, undefined],
    ],
  );
});

test('a watch from a revision with initial_snapshot: its events move the position', async () => {
  // No snapshot comes after a revision: the events are live ones, each a position.
  const { got, requests, error } = await runScripts(
    [
      () => fakeStream([{ events: [event(4), event(5)], revision: 5, journal_id: 'j', kind: 'KIND_EVENTS' }], grpc.status.UNAVAILABLE),
      () => fakeStream([], grpc.status.INVALID_ARGUMENT),
    ],
    { after_revision: 3, journal_id: 'j', initial_snapshot: true },
  );
  assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
  assert.deepEqual(got, [4, 5]);
  assert.deepEqual(
    requests.map((r) => [r.initial_snapshot, r.after_revision, r.journal_id]),
    [
      [false, 3, 'j'],
      [false, 5, 'j'],
    ],
  );

  const watch = watchEvents(
    () => fakeStream([{ events: [event(7)], revision: 7, journal_id: 'j', kind: 'KIND_EVENTS' }], grpc.status.INVALID_ARGUMENT),
    { after_revision: 6, journal_id: 'j', initial_snapshot: true },
    { backoffMs: 1 },
  );
  assert.equal((await watch.next()).value.revision, 7);
  await assert.rejects(watch.next());
  assert.deepEqual(watch.position(), { after_revision: 7, journal_id: 'j' });
});

test('the ids it remembers to drop repeats are the last 10,000, not every one', async () => {
  // A watch may run for weeks: the set of delivered ids grew with every event.
  const many = Array.from({ length: 10001 }, (_, i) => event(i + 1));
  const { got, error } = await runScripts([
    () => fakeStream([{ events: many, revision: 10001 }], grpc.status.UNAVAILABLE),
    // The newest is still remembered (dropped); the very first has left the window.
    () => fakeStream([{ events: [event(10001), event(1)], revision: 10001 }], grpc.status.INVALID_ARGUMENT),
  ]);
  assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(got.length, 10002);
  assert.deepEqual(got.slice(-2), [10001, 1]);
});

test('a connection broken mid-stream (INTERNAL, UNKNOWN) is resumed like UNAVAILABLE', async () => {
  const { got, requests, error } = await runScripts([
    () => fakeStream([{ events: [event(1)], revision: 1 }], grpc.status.INTERNAL),
    () => fakeStream([{ events: [event(2)], revision: 2 }], grpc.status.UNKNOWN),
    () => fakeStream([{ events: [event(3)], revision: 3 }], grpc.status.PERMISSION_DENIED),
  ]);
  assert.equal(error?.code, grpc.status.PERMISSION_DENIED);
  assert.deepEqual(got, [1, 2, 3]);
  assert.deepEqual(
    requests.map((r) => r.after_revision),
    [undefined, 1, 2],
  );
});

test('a request it cannot encode is thrown as INVALID_ARGUMENT, never opened or resumed', async () => {
  const opened = [];
  const encode = (request) => {
    if (!Array.isArray(request.instance_ids)) throw new TypeError('instance_ids: array expected');
  };
  const events = watchEvents((request) => opened.push(request), { instance_ids: 'inst0' }, { encode, backoffMs: 1 });
  await assert.rejects(
    (async () => {
      for await (const _ of events);
    })(),
    (error) => {
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      assert.match(error.details, /instance_ids: array expected/);
      return true;
    },
  );
  assert.deepEqual(opened, []);
});

test("Client.watch encodes with the stub's serializer before it opens a stream", async () => {
  // No server: the request fails to encode before any connection is tried.
  const dc = new Client('127.0.0.1:1', { timeoutMs: 1000 });
  try {
    await assert.rejects(
      (async () => {
        for await (const _ of dc.watch({ instance_ids: 5 }));
      })(),
      (error) => error.code === grpc.status.INVALID_ARGUMENT && /array expected/.test(error.details),
    );
  } finally {
    dc.close();
  }
});

// An error as the server sends it: its google.rpc.Status (with an ErrorInfo of `reason`) in
// the grpc-status-details-bin trailer, encoded here from the protos' field numbers.
function serverError(code, reason) {
  const writer = protobuf.Writer.create();
  const info = protobuf.Writer.create().uint32(10).string(reason).uint32(18).string('deltacloud').finish();
  const any = protobuf.Writer.create()
    .uint32(10)
    .string('type.googleapis.com/google.rpc.ErrorInfo')
    .uint32(18)
    .bytes(info)
    .finish();
  const status = writer.uint32(8).int32(code).uint32(18).string(reason).uint32(26).bytes(any).finish();
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(status));
  return Object.assign(new Error(reason), { code, metadata });
}

test('RESOURCE_EXHAUSTED is resumed when the server cut a slow subscriber, not when gRPC refused a message', async () => {
  const { got, requests, error } = await runScripts([
    () => fakeStream([{ events: [event(1)], revision: 1 }], serverError(grpc.status.RESOURCE_EXHAUSTED, 'SUBSCRIBER_TOO_SLOW')),
    // gRPC's own: a message larger than the client may receive, no ErrorInfo. It would come again.
    () => fakeStream([{ events: [event(2)], revision: 2 }], grpc.status.RESOURCE_EXHAUSTED),
    () => fakeStream([], grpc.status.INVALID_ARGUMENT),
  ]);
  assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.deepEqual(got, [1, 2]);
  assert.equal(requests.length, 2);
  assert.equal(requests[1].after_revision, 1);
});
