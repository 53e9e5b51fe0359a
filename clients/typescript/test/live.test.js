// Against a live server at DELTACLOUD_TARGET (tests/test_typescript_client.py starts one),
// through the stubs generated ahead of time: lists, an instance's life followed on the
// watch stream, and errors with their ErrorInfo.

import assert from 'node:assert/strict';
import net from 'node:net';
import test from 'node:test';

import { Code, ConnectError, DEFAULT_TIMEOUT_MS, connect, errorInfo } from '../index.js';
import { InstanceState } from '../gen/deltacloud/v1/common_pb.js';
import { EventCause, WatchInstanceEventsResponse_Kind as Kind } from '../gen/deltacloud/v1/instance_pb.js';

const target = process.env.DELTACLOUD_TARGET;

function client(options = {}) {
  assert.ok(target, 'DELTACLOUD_TARGET names the server to test against');
  return connect(target, { username: 'mockuser', password: 'mockpassword', ...options });
}

// A watch pulled as it goes: message() is the next message, next(predicate) the first
// event from now on that matches (within ms).
function follow(dc, request, signal) {
  const stream = dc.instances.watchInstanceEvents(request, { signal })[Symbol.asyncIterator]();
  async function message() {
    const { value, done } = await stream.next();
    assert.ok(!done, 'the stream ended');
    return value;
  }
  return {
    message,
    async next(predicate, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        const hit = (await message()).events.find(predicate);
        if (hit) return hit;
      }
      throw new Error('no such event in time');
    },
  };
}

test('lists answer with generated messages, and the driver is echoed in the trailers', async () => {
  const dc = client();
  let driver;
  const { realms } = await dc.realms.listRealms({}, { onTrailer: (t) => (driver = t.get('x-deltacloud-driver')) });
  assert.ok(realms.length > 0);
  assert.equal(driver, 'mock');
  const { images } = await dc.images.listImages({ pageSize: 1 });
  assert.equal(images.length, 1);
  assert.ok(images[0].id);
});

test('an instance created, running, stopped and deleted, followed on the watch stream', async () => {
  const dc = client();
  const controller = new AbortController();
  const watch = follow(dc, { progressInterval: { seconds: 1n } }, controller.signal);
  try {
    // The first progress message says the stream is open (and where it stands).
    const first = await watch.message();
    assert.equal(first.kind, Kind.PROGRESS);
    assert.match(first.journalId, /^[0-9a-f]{16}$/);

    const { instances } = await dc.instances.createInstance({ imageId: 'img1', name: 'from-es' });
    const id = instances[0].id;
    assert.equal(instances[0].state, InstanceState.PENDING);
    const running = await watch.next((e) => e.instanceId === id && e.state === InstanceState.RUNNING);
    assert.equal(running.previousState, InstanceState.PENDING);
    assert.equal(running.cause, EventCause.AUTOMATIC);
    assert.ok(running.revision > 0n);

    await dc.instances.stopInstance({ id });
    const stopped = await watch.next((e) => e.instanceId === id && e.state === InstanceState.STOPPED);
    assert.equal(stopped.instance.id, id);
    const deleted = await dc.instances.deleteInstance({ id });
    assert.equal(deleted.state, InstanceState.FINISH);
  } finally {
    controller.abort();
  }
});

test('errors carry the status code and the ErrorInfo', async () => {
  const dc = client();
  await assert.rejects(dc.instances.getInstance({ id: 'no-such-instance' }), (error) => {
    assert.equal(ConnectError.from(error).code, Code.NotFound);
    const info = errorInfo(error);
    assert.equal(info.reason, 'RESOURCE_NOT_FOUND');
    assert.equal(info.domain, 'deltacloud');
    assert.equal(info.metadata.resource_id, 'no-such-instance');
    return true;
  });
  const wrong = client({ password: 'wrong' });
  await assert.rejects(wrong.realms.listRealms({}), (error) => {
    assert.equal(ConnectError.from(error).code, Code.Unauthenticated);
    assert.ok(errorInfo(error).reason);
    return true;
  });
  const elsewhere = client({ driver: 'nimbus' });
  await assert.rejects(elsewhere.realms.listRealms({}), (error) => {
    assert.equal(ConnectError.from(error).code, Code.InvalidArgument);
    assert.equal(errorInfo(error).reason, 'UNKNOWN_DRIVER');
    return true;
  });
});

test('a unary call has a deadline when it names none; a server that never answers fails it', async () => {
  assert.equal(DEFAULT_TIMEOUT_MS, 30_000);
  // Accepts connections, never answers: a call without a deadline was pending for ever.
  const sockets = new Set();
  const silent = net.createServer((socket) => sockets.add(socket));
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = silent.address();
    const dc = connect(`127.0.0.1:${port}`, { username: 'u', password: 'p', timeoutMs: 500 });
    const started = Date.now();
    await assert.rejects(dc.realms.listRealms({}), (error) => {
      assert.equal(ConnectError.from(error).code, Code.DeadlineExceeded);
      return true;
    });
    assert.ok(Date.now() - started < 5000);
  } finally {
    for (const socket of sockets) socket.destroy(); // else they keep node from exiting
    silent.close();
  }
});
