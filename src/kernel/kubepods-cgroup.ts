// Where the kubelet puts pods in the cgroup v2 hierarchy, so that
// `--cgroup auto` captures exactly the pods of the node (never the node's
// own services). The kubelet's cgroup driver decides the name: "systemd"
// makes the slice kubepods.slice, "cgroupfs" the directory kubepods, both
// at the root of the hierarchy (kubelet --cgroup-root "/", the default).
// cgroup v2 is mounted at /sys/fs/cgroup on unified hosts and at
// /sys/fs/cgroup/unified on hybrid ones.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The kubepods cgroup names the kubelet's drivers use, in the order they are tried. */
export const KUBEPODS_CGROUPS = ['kubepods.slice', 'kubepods'] as const;

/**
 * The mount point of the cgroup v2 hierarchy in `mountinfo`
 * (/proc/self/mountinfo: the fifth field of the line whose filesystem type,
 * after " - ", is cgroup2); undefined when none is mounted.
 */
export function cgroup2MountPoint(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup2 ')) return pre.split(' ')[4];
  }
  return undefined;
}

/**
 * The kubepods cgroup directory of this node: the first of
 * KUBEPODS_CGROUPS that is a directory under the cgroup v2 mount point.
 * Throws an error naming what was looked for and where.
 */
export function detectKubepodsCgroup(
  mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8'),
  isDirectory: (p: string) => boolean = (p) => fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false,
): string {
  const root = cgroup2MountPoint(mountinfo);
  if (!root) throw new Error('--cgroup auto: no cgroup v2 hierarchy is mounted (sluice needs cgroup v2; on a hybrid host it is /sys/fs/cgroup/unified)');
  for (const name of KUBEPODS_CGROUPS) {
    const dir = path.join(root, name);
    if (isDirectory(dir)) return dir;
  }
  throw new Error(
    `--cgroup auto: no kubepods cgroup under ${root} (looked for ${KUBEPODS_CGROUPS.join(' (systemd driver) and ')} (cgroupfs driver)); ` +
      'is the kubelet running here with --cgroup-root /? give --cgroup DIR',
  );
}
