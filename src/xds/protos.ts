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

/** google.protobuf.Any: type_url is TYPE_PREFIX and the full message name, value the encoded message. */
export interface Any {
  type_url: string;
  value: Buffer;
}

/** The fields of envoy.config.core.v3.Node that sluice uses; id is the agent's node name. */
export interface XdsNode {
  id: string;
  cluster?: string;
  user_agent_name?: string;
}

/**
 * A client message on the Delta ADS stream. Without response_nonce it
 * subscribes to type_url (initial_resource_versions: name -> version already
 * held); with one it ACKs that response, or NACKs it when error_detail is set.
 */
export interface DeltaDiscoveryRequest {
  node?: XdsNode | null;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code: number; message: string } | null;
}

/** One resource of a DeltaDiscoveryResponse (envoy.service.discovery.v3.Resource). */
export interface XdsResource {
  name: string;
  version: string;
  resource: Any | null;
}

/**
 * A server message on the Delta ADS stream: the resources of one type added or
 * changed since what the client holds, the names removed, and the nonce its
 * ACK or NACK must echo.
 */
export interface DeltaDiscoveryResponse {
  system_version_info: string;
  type_url: string;
  resources: XdsResource[];
  removed_resources: string[];
  nonce: string;
}
