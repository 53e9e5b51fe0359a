// Types of index.js; the message and service types are the generated ones under gen/.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { CallOptions, Client } from '@connectrpc/connect';
import type { SecureClientSessionOptions } from 'node:http2';

import type { AddressService } from './gen/deltacloud/v1/address_pb.js';
import type { BucketService } from './gen/deltacloud/v1/bucket_pb.js';
import type { DiscoveryService } from './gen/deltacloud/v1/discovery_pb.js';
import type { FirewallService } from './gen/deltacloud/v1/firewall_pb.js';
import type { HardwareProfileService } from './gen/deltacloud/v1/hardware_profile_pb.js';
import type { ImageService } from './gen/deltacloud/v1/image_pb.js';
import type {
  InstanceEvent,
  InstanceService,
  WatchInstanceEventsRequestSchema,
  WatchInstanceEventsResponse,
} from './gen/deltacloud/v1/instance_pb.js';
import type { KeyService } from './gen/deltacloud/v1/key_pb.js';
import type { LoadBalancerService } from './gen/deltacloud/v1/load_balancer_pb.js';
import type { RealmService } from './gen/deltacloud/v1/realm_pb.js';
import type { StorageSnapshotService } from './gen/deltacloud/v1/storage_snapshot_pb.js';
import type { StorageVolumeService } from './gen/deltacloud/v1/storage_volume_pb.js';
import type { ErrorInfo } from './gen/google/rpc/error_details_pb.js';

export { Code, ConnectError } from '@connectrpc/connect';

export interface ConnectOptions {
  /** Basic credentials: the mock's user, or a cloud's access key. */
  username?: string;
  /** Basic credentials: the password, or a cloud's secret. */
  password?: string;
  /** x-deltacloud-driver (default: the server's --driver). */
  driver?: string;
  /** x-deltacloud-provider (default: the driver's). */
  provider?: string;
  /** TLS: node's HTTP/2 session options (ca, key, cert for mutual TLS); plaintext if unset. */
  tls?: SecureClientSessionOptions;
  /** Deadline of unary calls that name none (ms; default DEFAULT_TIMEOUT_MS, 0: none). */
  timeoutMs?: number;
}

/** A unary call's deadline when neither the call nor connect() names one: 30 s. */
export declare const DEFAULT_TIMEOUT_MS: number;

export interface Deltacloud {
  realms: Client<typeof RealmService>;
  hardwareProfiles: Client<typeof HardwareProfileService>;
  images: Client<typeof ImageService>;
  instances: Client<typeof InstanceService>;
  keys: Client<typeof KeyService>;
  storageVolumes: Client<typeof StorageVolumeService>;
  storageSnapshots: Client<typeof StorageSnapshotService>;
  buckets: Client<typeof BucketService>;
  addresses: Client<typeof AddressService>;
  firewalls: Client<typeof FirewallService>;
  loadBalancers: Client<typeof LoadBalancerService>;
  discovery: Client<typeof DiscoveryService>;
}

export declare function connect(target: string, options?: ConnectOptions): Deltacloud;

/** The ErrorInfo of a failed call (undefined when the server sent none). */
export declare function errorInfo(error: unknown): ErrorInfo | undefined;

export type WatchRequest = MessageInitShape<typeof WatchInstanceEventsRequestSchema>;

export interface WatchOptions {
  /** Ends the watch (the iterator returns). */
  signal?: AbortSignal;
  /** Resumes in a row before a failure is thrown (default: no limit). */
  maxResumes?: number;
  /** First wait before resuming, doubled each time up to 5 s (default 100 ms). */
  backoffMs?: number;
}

export interface Watch extends AsyncGenerator<InstanceEvent, void, undefined> {
  /**
   * Where the watch stands: resume a later run from here. It moves with each message, but
   * not inside a snapshot (until it completes); one that starts after a revision has none.
   */
  position(): { afterRevision?: bigint; journalId?: string };
}

/**
 * Instance events that resume by themselves after a dropped stream (see index.js). A
 * request that cannot be encoded (a field of the wrong type) is thrown at once, as a
 * ConnectError with Code.InvalidArgument, instead of being resumed.
 */
export declare function watch(
  open: (request: WatchRequest, options: CallOptions) => AsyncIterable<WatchInstanceEventsResponse>,
  request?: WatchRequest,
  options?: WatchOptions,
): Watch;
