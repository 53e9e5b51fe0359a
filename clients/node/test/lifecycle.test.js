'use strict';
// Against a live server at DELTACLOUD_TARGET (tests/test_node_client.py starts one): list
// images, create an instance, watch its events until it runs, stop it, delete it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client } = require('../index.js');

const target = process.env.DELTACLOUD_TARGET;

function client() {
  assert.ok(target, 'DELTACLOUD_TARGET names the server to test against');
  return new Client(target, { username: 'mockuser', password: 'mockpassword' });
}

// Resolves with the first event of `instanceId` into `state`; rejects after `ms`.
function eventInto(stream, instanceId, state, ms = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${state} event for ${instanceId}`)), ms);
    stream.on('data', (message) => {
      for (const event of message.events) {
        if (event.instance_id === instanceId && event.state === state) {
          clearTimeout(timer);
          resolve(event);
        }
      }
    });
    stream.on('error', (error) => {
      if (error.code !== 1) reject(error); // 1 = CANCELLED, our own cancel()
    });
  });
}

test('lists images, creates an instance, watches it run, stops and deletes it', async () => {
  const dc = client();
  try {
    const { images } = await dc.images.ListImages({});
    assert.ok(images.some((image) => image.id === 'img1'), 'the mock has img1');

    const watch = dc.instances.WatchInstanceEvents({ progress_interval: { seconds: 1 } });
    const { instances } = await dc.instances.CreateInstance({
      image_id: 'img1',
      hardware_profile_id: 'm1-small',
      name: 'from-node',
    });
    assert.equal(instances.length, 1);
    const id = instances[0].id;
    assert.equal(instances[0].state, 'INSTANCE_STATE_PENDING');

    const running = await eventInto(watch, id, 'INSTANCE_STATE_RUNNING');
    assert.equal(running.previous_state, 'INSTANCE_STATE_PENDING');
    assert.equal(running.cause, 'EVENT_CAUSE_AUTOMATIC');
    assert.ok(Number(running.revision) > 0);

    const stopped = eventInto(watch, id, 'INSTANCE_STATE_STOPPED');
    await dc.instances.StopInstance({ id });
    await stopped;
    watch.cancel();

    const deleted = await dc.instances.DeleteInstance({ id });
    assert.equal(deleted.state, 'INSTANCE_STATE_FINISH');
    await assert.rejects(dc.instances.GetInstance({ id }), (error) => error.code === 5); // NOT_FOUND
  } finally {
    dc.close();
  }
});

test('a failed call carries the status code and the ErrorInfo reason', async () => {
  const dc = client();
  try {
    await assert.rejects(dc.instances.GetInstance({ id: 'no-such-instance' }), (error) => {
      assert.equal(error.code, 5); // NOT_FOUND
      assert.ok(error.metadata.get('grpc-status-details-bin').length > 0);
      return true;
    });
  } finally {
    dc.close();
  }
});

test('watch() yields the events of a new instance until it runs', async () => {
  const dc = client();
  const controller = new AbortController();
  try {
    const events = dc.watch({ progress_interval: { seconds: 1 } }, { signal: controller.signal });
    const iterator = events[Symbol.asyncIterator]();
    const first = iterator.next(); // subscribe before the create
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { instances } = await dc.instances.CreateInstance({ image_id: 'img1' });
    const id = instances[0].id;
    const seen = [];
    let next = await first;
    while (!next.done) {
      const e = next.value;
      if (e.instance_id === id) seen.push(`${e.previous_state}->${e.state}:${e.cause}`);
      if (e.instance_id === id && e.state === 'INSTANCE_STATE_RUNNING') break;
      next = await iterator.next();
    }
    controller.abort();
    assert.deepEqual(seen, [
      'INSTANCE_STATE_START->INSTANCE_STATE_PENDING:EVENT_CAUSE_CREATE',
      'INSTANCE_STATE_PENDING->INSTANCE_STATE_RUNNING:EVENT_CAUSE_AUTOMATIC',
    ]);
  } finally {
    controller.abort();
    dc.close();
  }
});
