// watch()'s resume logic against fake streams (no server): after a dropped stream it
// subscribes again after the last revision seen, in the same journal, drops repeated
// events, takes a new snapshot when its history is gone (if it asked for one), and throws
// what it cannot resume from.

import assert from 'node:assert/strict';
import test from 'node:test';

import { Code, ConnectError, watch } from '../index.js';
import { WatchInstanceEventsResponse_Kind as Kind } from '../gen/deltacloud/v1/instance_pb.js';
import { ErrorInfoSchema } from '../gen/google/rpc/error_details_pb.js';

const event = (revision, id = `e${revision}`) => ({ revision: BigInt(revision), eventId: id });
const events = (journalId, ...list) => ({
  kind: Kind.EVENTS,
  events: list,
  revision: list.at(-1).revision,
  journalId,
});

// One fake stream per subscription, in order: yields its messages, then fails with `code`
// (or ends). Returns the events yielded, the requests made and the error thrown.
async function run(scripts, request = {}) {
  const requests = [];
  const open = (req) => {
    requests.push(req);
    const [messages, code] = scripts[requests.length - 1];
    return (async function* () {
      yield* messages;
      if (code instanceof Error) throw code;
      if (code !== undefined) throw new ConnectError('dropped', code);
    })();
  };
  const got = [];
  let error;
  try {
    for await (const e of watch(open, request, { backoffMs: 1 })) got.push(e.eventId);
  } catch (caught) {
    error = caught;
  }
  return { got, requests, error };
}

test('resumes after the last revision in its journal, without repeats', async () => {
  const { got, requests, error } = await run([
    [[events('j1', event(1), event(2))], Code.Unavailable],
    [[events('j1', event(2), event(3))], Code.InvalidArgument],
  ]);
  assert.equal(error.code, Code.InvalidArgument);
  assert.deepEqual(got, ['e1', 'e2', 'e3']);
  assert.equal(requests[0].afterRevision, undefined);
  assert.deepEqual([requests[1].afterRevision, requests[1].journalId], [2n, 'j1']);
});

test('another journal (OUT_OF_RANGE) is thrown, or with a snapshot taken again', async () => {
  const snapshot = (journalId, revision) => [
    events(journalId, event(revision, `snapshot-${journalId}-${revision}-inst0`)),
    { kind: Kind.SNAPSHOT_COMPLETE, events: [], revision: BigInt(revision), journalId },
  ];
  const plain = await run([[[events('a', event(4))], Code.Unavailable], [[], Code.OutOfRange]]);
  assert.equal(plain.error.code, Code.OutOfRange);

  const listed = await run(
    [
      [snapshot('a', 4), Code.Unavailable],
      [[], Code.OutOfRange], // the address now leads to another server
      [snapshot('b', 9), Code.PermissionDenied],
    ],
    { initialSnapshot: true },
  );
  assert.equal(listed.error.code, Code.PermissionDenied);
  assert.deepEqual(listed.got, ['snapshot-a-4-inst0', 'snapshot-b-9-inst0']);
  const asked = listed.requests.map((r) => [r.initialSnapshot, r.afterRevision, r.journalId]);
  assert.deepEqual(asked, [
    [true, undefined, undefined],
    [false, 4n, 'a'],
    [true, undefined, undefined],
  ]);
});

test('position() says where it stands, to resume in a later run', async () => {
  const open = () =>
    (async function* () {
      yield events('j7', event(5));
      yield { kind: Kind.PROGRESS, events: [], revision: 8n, journalId: 'j7' };
    })();
  const controller = new AbortController();
  const w = watch(open, {}, { signal: controller.signal, backoffMs: 1 });
  assert.equal((await w.next()).value.eventId, 'e5');
  controller.abort();
  assert.equal((await w.next()).done, true);
  assert.deepEqual(w.position(), { afterRevision: 8n, journalId: 'j7' });
});

test('a watch from a revision with initialSnapshot: its events move the position', async () => {
  // No snapshot comes after a revision: the events are live ones, each a position.
  const { got, requests, error } = await run(
    [
      [[events('j', event(4), event(5))], Code.Unavailable],
      [[], Code.InvalidArgument],
    ],
    { afterRevision: 3n, journalId: 'j', initialSnapshot: true },
  );
  assert.equal(error.code, Code.InvalidArgument);
  assert.deepEqual(got, ['e4', 'e5']);
  const asked = requests.map((r) => [r.initialSnapshot, r.afterRevision, r.journalId]);
  assert.deepEqual(asked, [
    [false, 3n, 'j'],
    [false, 5n, 'j'],
  ]);

  const open = () =>
    (async function* () {
      yield events('j', event(7));
      throw new ConnectError('refused', Code.PermissionDenied);
    })();
  const w = watch(open, { afterRevision: 6n, journalId: 'j', initialSnapshot: true }, { backoffMs: 1 });
  assert.equal((await w.next()).value.eventId, 'e7');
  await assert.rejects(w.next());
  assert.deepEqual(w.position(), { afterRevision: 7n, journalId: 'j' });
});

test('a request the client cannot encode is thrown at once, not resumed', async () => {
  for (const request of [{ afterRevision: 1.5 }, { states: ['flying'] }]) {
    let opened = 0;
    // Connect fails such a stream with INTERNAL, which watch() resumes after (for ever).
    const open = () => {
      opened += 1;
      return (async function* () {
        throw new ConnectError('cannot encode', Code.Internal);
      })();
    };
    const w = watch(open, request, { backoffMs: 1, maxResumes: 3 });
    await assert.rejects(w.next(), (error) => error instanceof ConnectError && error.code === Code.InvalidArgument);
    assert.equal(opened, 0);
  }
});

test('the ids it remembers to drop repeats are the last 10,000, not every one', async () => {
  // A watch may run for weeks: the set of delivered ids grew with every event.
  const many = Array.from({ length: 10001 }, (_, i) => event(i + 1));
  const { got, error } = await run([
    [[events('j1', ...many)], Code.Unavailable],
    // The newest is still remembered (dropped); the very first has left the window.
    [[events('j1', event(10001), event(1))], Code.InvalidArgument],
  ]);
  assert.equal(error.code, Code.InvalidArgument);
  assert.equal(got.length, 10002);
  assert.deepEqual(got.slice(-2), ['e10001', 'e1']);
});

test('leaving the iteration ends the stream (its signal is aborted)', async () => {
  const signals = [];
  const open = (req, { signal }) => {
    signals.push(signal);
    return (async function* () {
      yield events('j1', event(1), event(2));
      await new Promise(() => {}); // a live stream: nothing more for now
    })();
  };
  for await (const e of watch(open, {})) {
    assert.equal(e.eventId, 'e1');
    break;
  }
  assert.equal(signals.length, 1);
  assert.ok(signals[0].aborted, 'the stream was left open on the server');
});

test('RESOURCE_EXHAUSTED is resumed when the server cut a slow subscriber, not when gRPC refused a message', async () => {
  const tooSlow = new ConnectError('fell behind', Code.ResourceExhausted, undefined, [
    { desc: ErrorInfoSchema, value: { reason: 'SUBSCRIBER_TOO_SLOW', domain: 'deltacloud' } },
  ]);
  const { got, requests, error } = await run([
    [[events('j1', event(1))], tooSlow],
    // gRPC's own: a message larger than the client may receive. It would come again.
    [[events('j1', event(2))], Code.ResourceExhausted],
    [[], Code.Unavailable],
    [[], Code.InvalidArgument],
  ]);
  assert.equal(error.code, Code.ResourceExhausted);
  assert.deepEqual(got, ['e1', 'e2']);
  assert.equal(requests.length, 2);
  assert.equal(requests[1].afterRevision, 1n);
});
