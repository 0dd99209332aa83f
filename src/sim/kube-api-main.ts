// The simulated cluster's Kubernetes API: a TEST STAND-IN (kube-api-server.ts)
// with the EndpointSlice controller stand-in (endpoint-slice-controller.ts),
// run by `sluice-sim up` as a process of its own in the fabric's network
// namespace, next to sluice-control, which follows it with its Kubernetes
// source as it would a real API server. The objects live in memory; the sim
// writes them again (kube-api-client.ts) whenever this process is started.
//
//   node kube-api-main.js --dir DIR --listen HOST:PORT [--objects FILE] [--no-endpoint-slice-controller]
//
// --objects loads a List of objects at start (`npm run bench:scale` puts
// 100k pods in place that way rather than one write each);
// --no-endpoint-slice-controller leaves EndpointSlices to whoever writes them.
//
// writes DIR/kubeconfig (for sluice-control: https://HOST:PORT, the
// certificate, a bearer token) and serves the same API on DIR/api.sock for
// the sim's CLI, which runs outside the fabric's network namespace.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { EndpointSliceController } from './endpoint-slice-controller';
import { KubeApiStandIn, type StoredObject } from './kube-api-server';
import { kubeApiFiles } from './kube-api-client';
import { writeFileAtomic } from '../files/atomic-write';

/**
 * How often open watches get a bookmark. Short, so that sluice-control's
 * informers report a current resourceVersion soon after any change, and the
 * sim can tell when everything it wrote is served.
 */
const BOOKMARK_INTERVAL_MS = 100;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { dir: { type: 'string' }, listen: { type: 'string' }, objects: { type: 'string' }, 'no-endpoint-slice-controller': { type: 'boolean' } },
    strict: true,
  });
  if (!values.dir || !values.listen) throw new Error('usage: kube-api-main --dir DIR --listen HOST:PORT [--objects FILE] [--no-endpoint-slice-controller]');
  const at = values.listen.lastIndexOf(':');
  const host = values.listen.slice(0, at);
  const port = Number(values.listen.slice(at + 1));
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--listen ${values.listen}: expected HOST:PORT`);
  const files = kubeApiFiles(values.dir);
  fs.mkdirSync(values.dir, { recursive: true, mode: 0o700 });
  // A restart serves with the certificate and token of the first start: sluice-control's kubeconfig stays valid.
  const earlier = fs.existsSync(files.certificate) && fs.existsSync(files.key) && fs.existsSync(files.token);
  // A restarted stand-in has lost its objects (the sim writes them again):
  // resourceVersions start past any it gave before, and older ones are 410
  // Gone, so that sluice-control lists again, as after an etcd restore.
  const api = await KubeApiStandIn.start({
    host,
    port,
    bookmarkIntervalMs: BOOKMARK_INTERVAL_MS,
    startRevision: Date.now(),
    ...(earlier ? { certificate: { cert: fs.readFileSync(files.certificate, 'utf8'), key: fs.readFileSync(files.key, 'utf8') }, token: fs.readFileSync(files.token, 'utf8') } : {}),
  });
  if (values.objects) {
    const list = JSON.parse(fs.readFileSync(values.objects, 'utf8')) as { items?: StoredObject[] };
    for (const [i, o] of (list.items ?? []).entries()) {
      try {
        api.apply(o);
      } catch (err) {
        throw new Error(`--objects ${values.objects}: items[${i}]: ${(err as Error).message}`);
      }
    }
  }
  if (!values['no-endpoint-slice-controller']) new EndpointSliceController(api).start();
  await api.listenUnix(files.socket);
  writeFileAtomic(files.token, api.token, { mode: 0o600 });
  writeFileAtomic(files.certificate, api.caPem, { mode: 0o600 });
  writeFileAtomic(files.key, api.keyPem, { mode: 0o600 });
  // Written last: its presence says the API is being served.
  writeFileAtomic(files.kubeconfig, api.kubeconfig(), { mode: 0o600 });
  process.stdout.write(`kube-api stand-in serving ${api.url} and ${files.socket}\n`);
  const stop = () => void api.stop().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`kube-api stand-in: ${err.message}\n`);
  process.exit(1);
});
