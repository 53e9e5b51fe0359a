// The Deltacloud API from stubs generated ahead of time (gen/, made by `make setup` from
// protos/ with protoc-gen-es): one Connect client per service over a gRPC (HTTP/2)
// transport, every call carrying the credentials, driver and provider as metadata.
//
//   import { connect } from './index.js';
//   const dc = connect('127.0.0.1:50051', { username: 'mockuser', password: 'mockpassword' });
//   const { instances } = await dc.instances.listInstances({});

import { create, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

import { AddressService } from './gen/deltacloud/v1/address_pb.js';
import { BucketService } from './gen/deltacloud/v1/bucket_pb.js';
import { DiscoveryService } from './gen/deltacloud/v1/discovery_pb.js';
import { FirewallService } from './gen/deltacloud/v1/firewall_pb.js';
import { HardwareProfileService } from './gen/deltacloud/v1/hardware_profile_pb.js';
import { ImageService } from './gen/deltacloud/v1/image_pb.js';
import {
  InstanceService,
  WatchInstanceEventsRequestSchema,
  WatchInstanceEventsResponse_Kind as Kind,
} from './gen/deltacloud/v1/instance_pb.js';
import { KeyService } from './gen/deltacloud/v1/key_pb.js';
import { LoadBalancerService } from './gen/deltacloud/v1/load_balancer_pb.js';
import { RealmService } from './gen/deltacloud/v1/realm_pb.js';
import { StorageSnapshotService } from './gen/deltacloud/v1/storage_snapshot_pb.js';
import { StorageVolumeService } from './gen/deltacloud/v1/storage_volume_pb.js';
import { ErrorInfoSchema } from './gen/google/rpc/error_details_pb.js';

export { Code, ConnectError };

const SERVICES = {
  realms: RealmService,
  hardwareProfiles: HardwareProfileService,
  images: ImageService,
  instances: InstanceService,
  keys: KeyService,
  storageVolumes: StorageVolumeService,
  storageSnapshots: StorageSnapshotService,
  buckets: BucketService,
  addresses: AddressService,
  firewalls: FirewallService,
  loadBalancers: LoadBalancerService,
  discovery: DiscoveryService,
};

// Every call's metadata, as the server reads it (docs: README, "First calls").
function metadataOf({ username, password, driver, provider }) {
  const headers = {};
  if (username !== undefined || password !== undefined) {
    const pair = `${username ?? ''}:${password ?? ''}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  }
  if (driver) headers['x-deltacloud-driver'] = driver;
  if (provider) headers['x-deltacloud-provider'] = provider;
  return headers;
}

export function connect(target, options = {}) {
  const headers = metadataOf(options);
  const transport = createGrpcTransport({
    baseUrl: `${options.tls ? 'https' : 'http'}://${target}`,
    nodeOptions: options.tls,
    // HTTP/2 keepalive while calls are in flight, within what the server accepts
    // (--keepalive-min-client-interval, 10 s): a stream whose server vanished fails.
    pingIntervalMs: 30_000,
    pingTimeoutMs: 10_000,
    interceptors: [
      (next) => async (request) => {
        for (const [key, value] of Object.entries(headers)) request.header.set(key, value);
        return next(request);
      },
    ],
  });
  const clients = {};
  for (const [name, service] of Object.entries(SERVICES)) {
    clients[name] = withDefaultTimeout(createClient(service, transport), service, options.timeoutMs);
  }
  return clients;
}

// A unary call's deadline when the call names none (as the Python and Node.js clients'):
// a server or network that never answers fails the call with DEADLINE_EXCEEDED instead of
// leaving it pending for ever. Streams (watch, downloads) have none. `timeoutMs: 0` on a
// call, or in connect()'s options, means no deadline.
export const DEFAULT_TIMEOUT_MS = 30_000;

function withDefaultTimeout(client, service, timeoutMs = DEFAULT_TIMEOUT_MS) {
  for (const method of Object.values(service.method)) {
    if (method.methodKind !== 'unary') continue;
    const call = client[method.localName];
    client[method.localName] = (request, callOptions = {}) =>
      call(request, { ...callOptions, timeoutMs: callOptions.timeoutMs ?? timeoutMs });
  }
  return client;
}

// Stream failures a watch resumes after: the server restarting or shutting down, a proxy or
// the network cutting the stream, a connection broken mid-stream; and a slow subscriber cut
// (RESOURCE_EXHAUSTED with reason SUBSCRIBER_TOO_SLOW only: gRPC's own, a message over the
// client's receive limit, would come again at each resume).
const RESUMABLE = new Set([Code.Unavailable, Code.Canceled, Code.Internal, Code.Unknown]);

function resumable(failure) {
  if (RESUMABLE.has(failure.code)) return true;
  return failure.code === Code.ResourceExhausted && errorInfo(failure)?.reason === 'SUBSCRIBER_TOO_SLOW';
}

// Instance events of the caller's scope, as an async iterator that resumes by itself after
// a dropped stream, from the last revision seen in the same journal, without repeating an
// event (docs/events.md, "How a client resumes"). `open(request, { signal })` starts one
// stream: pass `(r, o) => dc.instances.watchInstanceEvents(r, o)`. OUT_OF_RANGE (history
// compacted, or another server's journal) is thrown, unless the watch asked for a snapshot:
// then it takes a new one and goes on. A request the client cannot encode (a field of the
// wrong type) is thrown at once as INVALID_ARGUMENT, not resumed. `position()` says where it
// stands, to resume in a later run with `afterRevision` and `journalId`.
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

export function watch(open, request = {}, { signal, maxResumes = Infinity, backoffMs = 100 } = {}) {
  const state = { revision: request.afterRevision, journalId: request.journalId };
  const events = (async function* () {
    const seen = new Set();
    let resumes = 0;
    // A watch that starts after a revision gets no snapshot: its events move the position.
    let snapshotDone = !request.initialSnapshot || state.revision !== undefined;
    while (!signal?.aborted) {
      const resumed = state.revision !== undefined;
      const next = {
        ...request,
        afterRevision: state.revision,
        journalId: resumed ? state.journalId : undefined,
        initialSnapshot: Boolean(request.initialSnapshot) && !resumed,
      };
      encodable(next);
      // The stream's own signal: aborted when the caller's is, and when the caller leaves
      // the iteration (break, return, an exception), which otherwise left the stream open on
      // the server and kept the process alive.
      const stream = new AbortController();
      const stop = () => stream.abort();
      signal?.addEventListener('abort', stop, { once: true });
      try {
        for await (const message of open(next, { signal: stream.signal })) {
          for (const event of message.events) {
            if (remembered(seen, event.eventId)) continue;
            yield event;
          }
          if (message.kind === Kind.SNAPSHOT_COMPLETE) snapshotDone = true;
          // Snapshot events carry no position to resume from until the snapshot completes.
          if (message.kind !== Kind.EVENTS || snapshotDone) {
            state.revision = message.revision;
            state.journalId = message.journalId || state.journalId;
          }
          resumes = 0;
        }
        if (signal?.aborted) return;
      } catch (error) {
        if (signal?.aborted) return;
        const failure = ConnectError.from(error);
        if (failure.code === Code.OutOfRange && request.initialSnapshot && resumes < maxResumes) {
          // List then watch again: a new view, whose snapshot is news.
          state.revision = state.journalId = undefined;
          snapshotDone = false;
          seen.clear();
        } else if (!resumable(failure) || resumes >= maxResumes) {
          throw failure;
        }
      } finally {
        signal?.removeEventListener('abort', stop);
        stream.abort();
      }
      resumes += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(backoffMs * 2 ** (resumes - 1), 5000)));
    }
  })();
  events.position = () => ({ afterRevision: state.revision, journalId: state.journalId });
  return events;
}

// Throws (INVALID_ARGUMENT) if `request` cannot be encoded. The stream would fail with it as
// INTERNAL, which a dropped connection also is: the watch would resume it for ever.
function encodable(request) {
  try {
    toBinary(WatchInstanceEventsRequestSchema, create(WatchInstanceEventsRequestSchema, request));
  } catch (error) {
    const message = `invalid WatchInstanceEventsRequest: ${error.message}`;
    throw new ConnectError(message, Code.InvalidArgument, undefined, undefined, error);
  }
}

// The google.rpc.ErrorInfo every error of the server carries: { reason, domain, metadata }
// (undefined for an error that is not the server's, such as a connection failure).
export function errorInfo(error) {
  return ConnectError.from(error).findDetails(ErrorInfoSchema)[0];
}
