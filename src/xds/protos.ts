// Loads the protocol definitions: the Envoy discovery service from the
// protos that @grpc/grpc-js-xds ships (never copied into this repository),
// and sluice's own resource messages from proto/sluice/v1.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

const xdsDeps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const includeDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(xdsDeps, d));
const sluiceProtoDir = path.resolve(__dirname, '..', '..', '..', 'proto');

export const TYPE_PREFIX = 'type.googleapis.com/';

let adsService: grpc.ServiceDefinition | undefined;
let adsClientCtor: grpc.ServiceClientConstructor | undefined;

function loadAds(): void {
  const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    includeDirs,
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } };
  };
  adsClientCtor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  adsService = adsClientCtor.service;
}

/** envoy.service.discovery.v3.AggregatedDiscoveryService, for servers. */
export function adsServiceDefinition(): grpc.ServiceDefinition {
  if (!adsService) loadAds();
  return adsService!;
}

/** The generated client constructor for the same service. */
export function adsClientConstructor(): grpc.ServiceClientConstructor {
  if (!adsClientCtor) loadAds();
  return adsClientCtor!;
}

let sluiceRoot: protobuf.Root | undefined;

/** A message type of proto/sluice/v1, e.g. "sluice.v1.Workload". */
export function sluiceType(fullName: string): protobuf.Type {
  if (!sluiceRoot) {
    sluiceRoot = new protobuf.Root();
    sluiceRoot.resolvePath = (_origin, target) => path.join(sluiceProtoDir, target);
    sluiceRoot.loadSync(['sluice/v1/workload.proto', 'sluice/v1/service.proto', 'sluice/v1/authorization.proto']);
    sluiceRoot.resolveAll();
  }
  return sluiceRoot.lookupType(fullName);
}

// Wire shapes of the delta protocol (keepCase: field names as in the protos).

export interface Any {
  type_url: string;
  value: Buffer;
}

export interface XdsNode {
  id: string;
  cluster?: string;
  user_agent_name?: string;
}

export interface DeltaDiscoveryRequest {
  node?: XdsNode | null;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code: number; message: string } | null;
}

export interface XdsResource {
  name: string;
  version: string;
  resource: Any | null;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  type_url: string;
  resources: XdsResource[];
  removed_resources: string[];
  nonce: string;
}
