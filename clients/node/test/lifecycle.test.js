'use strict';
// Against a live server at DELTACLOUD_TARGET (tests/test_node_client.py starts one): list
// images, create an instance, watch its events until it runs, stop it, delete it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Client, errorInfo } = require('../index.js');

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
      const info = errorInfo(error);
      assert.equal(info.reason, 'RESOURCE_NOT_FOUND');
      assert.equal(info.domain, 'deltacloud');
      assert.equal(info.metadata.resource_id, 'no-such-instance');
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

test('UploadBlob sends a stream of chunks; DownloadBlob gives the same bytes back', async () => {
  const dc = client();
  const bucket = `node-${process.pid}-${Date.now()}`;
  try {
    await dc.buckets.CreateBucket({ name: bucket });
    // 3 MiB in 64 KiB chunks from an async generator: more than the stream buffers at once.
    const content = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < content.length; i += 1) content[i] = (i * 7 + (i >> 12)) % 251;
    async function* requests() {
      yield { header: { bucket_id: bucket, blob_id: 'big.bin', content_type: 'application/octet-stream', content_length: content.length } };
      for (let at = 0; at < content.length; at += 65536) yield { chunk: content.subarray(at, at + 65536) };
    }
    const blob = await dc.buckets.UploadBlob(requests());
    assert.equal(blob.id, 'big.bin');
    assert.equal(Number(blob.content_length), content.length);

    const chunks = [];
    let described;
    for await (const message of dc.buckets.DownloadBlob({ bucket_id: bucket, id: 'big.bin' })) {
      if (message.blob) described = message.blob;
      else chunks.push(message.chunk);
    }
    assert.equal(described.id, 'big.bin');
    assert.ok(Buffer.concat(chunks).equals(content), 'the bytes downloaded are the bytes uploaded');

    // A server error ends the upload: the promise rejects with the server's status.
    await assert.rejects(
      dc.buckets.UploadBlob([{ header: { bucket_id: 'no-such-bucket', blob_id: 'x' } }, { chunk: Buffer.from('x') }]),
      (error) => error.code === 5, // NOT_FOUND
    );
    // An error of the data source is what the upload rejects with, and nothing is stored.
    const broken = new Error('the source broke');
    async function* failing() {
      yield { header: { bucket_id: bucket, blob_id: 'half.bin' } };
      yield { chunk: Buffer.from('half') };
      throw broken;
    }
    await assert.rejects(dc.buckets.UploadBlob(failing()), (error) => error === broken);
    const { blobs } = await dc.buckets.ListBlobs({ bucket_id: bucket });
    assert.deepEqual(
      blobs.map((b) => b.id),
      ['big.bin'],
    );
  } finally {
    dc.close();
  }
});
