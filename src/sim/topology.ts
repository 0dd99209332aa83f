// Network plumbing of the simulated cluster, all of it inside namespaces the
// sim creates: a fabric netns with a bridge joining the nodes, one netns per
// node with a pod bridge whose address is the node proxy address, one netns
// per pod, networked onto its node's bridge by the node's CNI chain
// (cni-runtime.ts). The machine's own network is never touched.
import { run, runIgnoringFailure } from './host';
import type { NodeState } from './sim-state';

const FABRIC_BRIDGE = 'br0';
const POD_BRIDGE = 'cni0';

function ipn(netns: string, ...args: string[]): void {
  run('ip', ['-n', netns, ...args]);
}

function sysctl(netns: string, key: string, value: string): void {
  run('nsenter', [`--net=/run/netns/${netns}`, '--', 'sysctl', '-q', '-w', `${key}=${value}`]);
}

/** The fabric joins the nodes; its own address is where the control plane listens. */
/**
 * A Linux bridge without an address of its own takes the lowest MAC of its
 * ports, and changes it when ports come and go: every neighbour's ARP entry
 * for the gateway then goes stale. Bridges here get a fixed, locally
 * administered MAC instead.
 */
function bridgeMac(kind: number, index: number): string {
  return `02:00:5e:00:${kind.toString(16).padStart(2, '0')}:${index.toString(16).padStart(2, '0')}`;
}

/** The fabric netns: a bridge with `address`/24 that joins every node. */
export function createFabric(netns: string, address: string): void {
  run('ip', ['netns', 'add', netns]);
  ipn(netns, 'link', 'set', 'lo', 'up');
  ipn(netns, 'link', 'add', FABRIC_BRIDGE, 'address', bridgeMac(0, 0), 'type', 'bridge');
  ipn(netns, 'addr', 'add', `${address}/24`, 'dev', FABRIC_BRIDGE);
  ipn(netns, 'link', 'set', FABRIC_BRIDGE, 'up');
}

/** A node's netns: its pod bridge with the gateway address, and its link to the fabric. */
export function createNode(node: NodeState, fabricNetns: string, prefixLen: number): void {
  const ns = node.netns;
  run('ip', ['netns', 'add', ns]);
  ipn(ns, 'link', 'set', 'lo', 'up');
  ipn(ns, 'link', 'add', POD_BRIDGE, 'address', bridgeMac(1, node.index), 'type', 'bridge');
  ipn(ns, 'addr', 'add', `${node.gateway}/${prefixLen}`, 'dev', POD_BRIDGE);
  ipn(ns, 'link', 'set', POD_BRIDGE, 'up');
  sysctl(ns, 'net.ipv4.ip_forward', '1');
  // Uplink: eth0 in the node, f<index> on the fabric bridge.
  const fabricEnd = `f${node.index}`;
  ipn(fabricNetns, 'link', 'add', fabricEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  ipn(fabricNetns, 'link', 'set', fabricEnd, 'master', FABRIC_BRIDGE, 'up');
  ipn(ns, 'addr', 'add', `${node.fabricAddress}/24`, 'dev', 'eth0');
  ipn(ns, 'link', 'set', 'eth0', 'up');
}

/** A route on each node to every other node's pod CIDR, via that node's fabric address. */
export function routeBetweenNodes(nodes: NodeState[]): void {
  for (const a of nodes) for (const b of nodes) if (a !== b) ipn(a.netns, 'route', 'replace', b.podCidr, 'via', b.fabricAddress);
}

/**
 * The pod's network namespace, as a container runtime creates it for a
 * sandbox; its interfaces come from the node's CNI chain (cni-runtime.ts).
 */
export function createPodNetns(podNetns: string): void {
  run('ip', ['netns', 'add', podNetns]);
}

/**
 * The node's primary CNI configuration, what a cluster's network add-on
 * would install: Debian's `bridge` plugin on the node's pod bridge (the
 * gateway is the node proxy address), `host-local` addresses from the node's
 * pod CIDR, kept in ipamDir. sluice-cni chains itself after it (`sluice-cni install`).
 */
export function primaryCniConfig(node: NodeState, ipamDir: string): object {
  return {
    cniVersion: '1.0.0',
    name: 'sim-pods',
    plugins: [
      {
        type: 'bridge',
        bridge: POD_BRIDGE,
        isGateway: true,
        ipMasq: false,
        ipam: {
          type: 'host-local',
          dataDir: ipamDir,
          ranges: [[{ subnet: node.podCidr, gateway: node.gateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
    ],
  };
}

/** Deleting a netns removes its veth ends, and with them the peers. */
export function deleteNetns(netns: string): void {
  runIgnoringFailure('ip', ['netns', 'del', netns]);
}
