// The Deltacloud API from stubs generated ahead of time (gen/, made by `make setup` from
// protos/ with protoc-gen-es): one Connect client per service over a gRPC (HTTP/2)
// transport, every call carrying the credentials, driver and provider as metadata.
//
//   import { connect } from './index.js';
//   const dc = connect('127.0.0.1:50051', { username: 'mockuser', password: 'mockpassword' });
//   const { instances } = await dc.instances.listInstances({});

import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';

import { AddressService } from './gen/deltacloud/v1/address_pb.js';
import { BucketService } from './gen/deltacloud/v1/bucket_pb.js';
import { DiscoveryService } from './gen/deltacloud/v1/discovery_pb.js';
import { FirewallService } from './gen/deltacloud/v1/firewall_pb.js';
import { HardwareProfileService } from './gen/deltacloud/v1/hardware_profile_pb.js';
import { ImageService } from './gen/deltacloud/v1/image_pb.js';
import { InstanceService } from './gen/deltacloud/v1/instance_pb.js';
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
  for (const [name, service] of Object.entries(SERVICES)) clients[name] = createClient(service, transport);
  return clients;
}

// The google.rpc.ErrorInfo every error of the server carries: { reason, domain, metadata }
// (undefined for an error that is not the server's, such as a connection failure).
export function errorInfo(error) {
  return ConnectError.from(error).findDetails(ErrorInfoSchema)[0];
}
