'use strict';
// The Node.js client of the Deltacloud gRPC API: the service stubs of every collection,
// loaded at run time from the project's protos/ (the same contract as the server), and the
// call metadata (driver, provider, Basic credentials).

const path = require('node:path');
const util = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'protos');

const SERVICES = {
  realms: 'RealmService',
  hardwareProfiles: 'HardwareProfileService',
  images: 'ImageService',
  instances: 'InstanceService',
  keys: 'KeyService',
  storageVolumes: 'StorageVolumeService',
  storageSnapshots: 'StorageSnapshotService',
  buckets: 'BucketService',
  addresses: 'AddressService',
  firewalls: 'FirewallService',
  loadBalancers: 'LoadBalancerService',
  discovery: 'DiscoveryService',
};

// HTTP/2 keepalive while calls are in flight: a watch whose server vanished, or whose
// network path died without closing the connection, fails within about 40 seconds and
// resumes instead of waiting for ever. Every 30 s, which the server allows (its
// --keepalive-min-client-interval is 10 s by default). `channelOptions` overrides them.
const KEEPALIVE_OPTIONS = {
  'grpc.keepalive_time_ms': 30000,
  'grpc.keepalive_timeout_ms': 10000,
};

function loadPackage(protoRoot = PROTO_ROOT) {
  const files = Object.values(SERVICES).map(
    (service) => `deltacloud/v1/${service.replace(/Service$/, '').replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase()}.proto`,
  );
  const definition = protoLoader.loadSync(files, {
    includeDirs: [protoRoot],
    keepCase: true, // field names as in the protos: image_id, page_token
    longs: Number,
    enums: String, // enum values by name: 'INSTANCE_STATE_RUNNING'
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).deltacloud.v1;
}

// The metadata of every call. util.inspect (console.log) shows it without the credentials,
// so that logging the client, or its `metadata`, does not leak them.
function metadataFor({ driver, provider, username, password } = {}) {
  const metadata = new grpc.Metadata();
  if (driver) metadata.set('x-deltacloud-driver', driver);
  if (provider) metadata.set('x-deltacloud-provider', provider);
  if (username !== undefined || password !== undefined) {
    const pair = Buffer.from(`${username ?? ''}:${password ?? ''}`).toString('base64');
    metadata.set('authorization', `Basic ${pair}`);
  }
  Object.defineProperty(metadata, util.inspect.custom, { value: inspectRedacted });
  Object.defineProperty(metadata, 'toJSON', { value: redactedMap });
  return metadata;
}

// The metadata as util.inspect and JSON.stringify show it: the credentials replaced.
function redactedMap() {
  const shown = { ...this.getMap() };
  if ('authorization' in shown) shown.authorization = '[redacted]';
  return shown;
}

function inspectRedacted(depth, options, inspect) {
  return `Metadata ${inspect(redactedMap.call(this), options)}`;
}

// A client of every service over one channel. Each unary method is promisified, with a
// deadline of `timeoutMs` (option of the client or of the call; 30 s by default, null for
// none):
//   const { images } = await dc.images.ListImages({});
//   await dc.instances.GetInstance({ id: 'inst0' }, { timeoutMs: 2000 });
// WatchInstanceEvents and DownloadBlob return the stream (an EventEmitter with 'data',
// 'error', 'end'). UploadBlob takes the request messages (an iterable or async iterable: the
// header first, then the chunks) and resolves with the stored Blob; it has a deadline only if
// the call names one (`timeoutMs`):
//   await dc.buckets.UploadBlob([{ header: { bucket_id: 'b', blob_id: 'x' } }, { chunk }]);
class Client {
  constructor(target, options = {}) {
    const v1 = loadPackage(options.protoRoot);
    const credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.metadata = metadataFor(options);
    this.channel = new grpc.Channel(target, credentials, {
      ...KEEPALIVE_OPTIONS,
      ...(options.channelOptions ?? {}),
    });
    for (const [name, service] of Object.entries(SERVICES)) {
      const stub = new v1[service](target, credentials, { channelOverride: this.channel });
      this[name] = wrap(stub, this.metadata, options.timeoutMs);
    }
  }

  // Instance events as an async iterator that resumes by itself, as docs/events.md says a
  // client should: after a dropped stream (UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED by the
  // network) it subscribes again after the last revision seen and drops events it already
  // has (by event_id). OUT_OF_RANGE (history compacted, or another server's journal) is
  // thrown, unless the watch asked for initial_snapshot: then it takes a new snapshot (from
  // no revision: a saved after_revision and journal_id are dropped) and goes on. A watch
  // with both a saved position and initial_snapshot starts after the position, without a
  // snapshot unless it needs one. Other errors are thrown.
  //   for await (const event of dc.watch({ instance_ids: ['inst0'] })) { ... }
  // Stop it with `break`, or with `signal` (an AbortSignal).
  watch(request = {}, options = {}) {
    const { stub } = this.instances;
    return watchEvents((req) => this.instances.WatchInstanceEvents(req), request, {
      encode: (req) => stub.WatchInstanceEvents.requestSerialize(req),
      ...options,
    });
  }

  close() {
    this.channel.close();
  }
}

// Stream failures a watch resumes after: the server restarting or shutting down, a slow
// subscriber cut, a proxy or the network cutting the stream, and a connection broken
// mid-stream (which grpc-js reports as INTERNAL, or UNKNOWN through some proxies).
// A slow subscriber cut (RESOURCE_EXHAUSTED, reason SUBSCRIBER_TOO_SLOW) is resumed too;
// gRPC's own RESOURCE_EXHAUSTED (a message over the client's receive limit) is not: it would
// come again at each resume.
const RESUMABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL, grpc.status.UNKNOWN]);

function resumable(error) {
  if (RESUMABLE.has(error.code)) return true;
  return error.code === grpc.status.RESOURCE_EXHAUSTED && errorInfo(error)?.reason === 'SUBSCRIBER_TOO_SLOW';
}

// google.rpc.Status and ErrorInfo, the error details every failure of the server carries
// (in the grpc-status-details-bin trailer).
const RPC = protobuf.Root.fromJSON({
  nested: {
    Status: {
      fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'Any', id: 3 } },
    },
    Any: { fields: { type_url: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
    ErrorInfo: {
      fields: {
        reason: { type: 'string', id: 1 },
        domain: { type: 'string', id: 2 },
        metadata: { keyType: 'string', type: 'string', id: 3 },
      },
    },
  },
});
const ERROR_INFO_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

// The google.rpc.ErrorInfo of a failed call: { reason, domain, metadata }, or undefined for
// an error that is not the server's (a connection failure, gRPC's own limits).
//   catch (error) { if (errorInfo(error)?.reason === 'RESOURCE_NOT_FOUND') ... }
function errorInfo(error) {
  const [details] = error?.metadata?.get?.('grpc-status-details-bin') ?? [];
  if (!details) return undefined;
  try {
    const status = RPC.lookupType('Status').decode(details);
    const any = status.details.find((detail) => detail.type_url === ERROR_INFO_URL);
    if (!any) return undefined;
    const info = RPC.lookupType('ErrorInfo').decode(any.value);
    return { reason: info.reason, domain: info.domain, metadata: { ...info.metadata } };
  } catch {
    return undefined; // not a google.rpc.Status: not the server's
  }
}

// The resume logic on its own (open(request) returns a stream of
// WatchInstanceEventsResponse), so it can be tested without a server. The iterator's
// position() is where it stands: { after_revision, journal_id }, to resume a later run.
// `encode(request)`, if given, serializes a request before it is sent (Client.watch passes
// the stub's): a request it cannot encode (a field of the wrong type) is thrown at once as
// INVALID_ARGUMENT, since grpc-js would fail its stream as INTERNAL, which is resumed.
function watchEvents(open, request = {}, options = {}) {
  // The journal `after_revision` counts in is sent with it, so that a server whose journal
  // is another one (another server behind the address) refuses the resume (OUT_OF_RANGE)
  // instead of resuming from an unrelated position.
  const state = { after: request.after_revision, journal: request.journal_id };
  const events = watchLoop(open, request, options, state);
  events.position = () => ({ after_revision: state.after, journal_id: state.journal });
  return events;
}

// Event ids a watch has delivered, to drop what a resumed stream repeats: the last
// SEEN_WINDOW of them (as the Python client keeps), since a watch may run for weeks and a
// set of every id would grow with each event.
const SEEN_WINDOW = 10000;

function remembered(seen, id) {
  if (seen.has(id)) return true;
  seen.add(id);
  if (seen.size > SEEN_WINDOW) seen.delete(seen.values().next().value);
  return false;
}

async function* watchLoop(open, request, { signal, maxResumes = Infinity, backoffMs = 100, encode }, state) {
  const seen = new Set();
  let resumes = 0;
  // A watch that starts after a revision gets no snapshot: its events move the position.
  let snapshotDone = !request.initial_snapshot || state.after !== undefined;
  // The caller's position is state's until a new snapshot forgets it (OUT_OF_RANGE).
  const { after_revision: _after, journal_id: _journal, ...rest } = request;
  while (!signal?.aborted) {
    // Resumed after the last revision seen; the snapshot (if asked for) only until one came,
    // as the server refuses a snapshot together with a revision to start after.
    const { after, journal } = state;
    const next = {
      ...rest,
      ...(after !== undefined
        ? { after_revision: after, initial_snapshot: false, ...(journal ? { journal_id: journal } : {}) }
        : {}),
    };
    if (encode) encodable(encode, next);
    const stream = open(next);
    const stop = () => stream.cancel();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const message of stream) {
        for (const event of message.events ?? []) {
          if (remembered(seen, event.event_id)) continue;
          yield event;
        }
        if (message.kind === 'KIND_SNAPSHOT_COMPLETE') snapshotDone = true;
        // Snapshot events carry no position to resume from until the snapshot completes.
        if (message.revision !== undefined && (message.kind !== 'KIND_EVENTS' || snapshotDone)) {
          state.after = Number(message.revision);
          if (message.journal_id) state.journal = message.journal_id;
        }
        resumes = 0;
      }
      if (signal?.aborted) return;
    } catch (error) {
      if (signal?.aborted) return;
      if (error.code === grpc.status.OUT_OF_RANGE && request.initial_snapshot && resumes < maxResumes) {
        // History gone, or another server's journal: list then watch again (a new view,
        // whose snapshot is news).
        state.after = undefined;
        state.journal = undefined;
        snapshotDone = false;
        seen.clear();
      } else if (!resumable(error) || resumes >= maxResumes) {
        throw error;
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      stream.cancel();
    }
    resumes += 1;
    await new Promise((resolve) => setTimeout(resolve, Math.min(backoffMs * 2 ** (resumes - 1), 5000)));
  }
}

function encodable(encode, request) {
  try {
    encode(request);
  } catch (cause) {
    const error = new Error(`invalid WatchInstanceEventsRequest: ${cause.message}`, { cause });
    throw Object.assign(error, { code: grpc.status.INVALID_ARGUMENT, details: error.message });
  }
}

// A unary call's deadline when neither the call nor the client names one (the Python
// client's too): a server or network that never answers fails the call with
// DEADLINE_EXCEEDED instead of leaving it pending for ever. Streams have none.
const DEFAULT_TIMEOUT_MS = 30000;

function wrap(stub, metadata, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const wrapped = { stub };
  for (const [name, method] of Object.entries(Object.getPrototypeOf(stub))) {
    if (typeof method !== 'function' || !method.path) continue;
    if (method.responseStream) {
      wrapped[name] = (request = {}) => stub[name](request, metadata);
    } else if (method.requestStream) {
      // An upload has no deadline unless the call names one (a large blob takes its time;
      // the server ends one idle for its --transfer-idle-timeout), as the streams.
      wrapped[name] = (requests, options = {}) => sendAll(stub, name, metadata, requests, deadline(null, options));
    } else {
      // dc.images.ListImages(request, { timeoutMs }): timeoutMs null for no deadline.
      wrapped[name] = (request = {}, options = {}) =>
        new Promise((resolve, reject) => {
          const callOptions = deadline(timeoutMs, options);
          stub[name](request, metadata, callOptions, (error, response) => (error ? reject(error) : resolve(response)));
        });
    }
  }
  return wrapped;
}

// The call options of a call: its deadline from the call's timeoutMs, else the client's.
function deadline(clientTimeout, { timeoutMs = clientTimeout } = {}) {
  return timeoutMs == null ? {} : { deadline: Date.now() + timeoutMs };
}

// A client-streaming call: sends each of `requests` (iterable or async iterable) as the
// stream takes them (waiting for 'drain', so a large upload is not buffered whole), then
// resolves with the response. A server error ends the sending; an error of `requests`
// cancels the call and is what the promise rejects with.
function sendAll(stub, name, metadata, requests, callOptions) {
  return new Promise((resolve, reject) => {
    let settle;
    const finished = new Promise((resolved) => {
      settle = resolved;
    });
    let done = false;
    const call = stub[name](metadata, callOptions, (error, response) => {
      done = true;
      settle();
      if (error) reject(error);
      else resolve(response);
    });
    (async () => {
      for await (const request of requests) {
        if (done) return;
        if (!call.write(request)) {
          let drained;
          await Promise.race([new Promise((resolved) => call.once('drain', (drained = resolved))), finished]);
          call.removeListener('drain', drained);
        }
      }
      if (!done) call.end();
    })().catch((error) => {
      if (done) return;
      done = true;
      reject(error);
      call.cancel();
    });
  });
}

module.exports = {
  Client,
  DEFAULT_TIMEOUT_MS,
  KEEPALIVE_OPTIONS,
  errorInfo,
  loadPackage,
  metadataFor,
  watchEvents,
  grpc,
  PROTO_ROOT,
};
