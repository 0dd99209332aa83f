// The Kubernetes objects the benches put in their simulated cluster, as YAML
// documents for sluice-sim: a meshed namespace, one pod per workload and a
// Service per target. Each returns one document starting with `---`
// (except the namespace, which starts the file).

/** A namespace labelled into the mesh (sluice.dev/mesh: enabled). */
export function meshedNamespaceYaml(namespace: string): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${namespace}
  labels: { sluice.dev/mesh: enabled }
`;
}

/** A pod on `node` running `command` (argv), labelled app=<name> so a Service of the same name selects it. */
export function podYaml(namespace: string, name: string, node: string, command: string[]): string {
  return `---
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${namespace}, labels: { app: ${name} } }
spec:
  nodeName: ${node}
  containers:
    - name: ${name}
      command: ${JSON.stringify(command)}
`;
}

/** A Service with cluster IP `vip` selecting app=<name>: one TCP port `port`, forwarded to `targetPort` (default: the same). */
export function serviceYaml(namespace: string, name: string, vip: string, port: number, targetPort = port): string {
  return `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  clusterIP: ${vip}
  selector: { app: ${name} }
  ports: [{ name: tcp, port: ${port}, targetPort: ${targetPort} }]
`;
}
