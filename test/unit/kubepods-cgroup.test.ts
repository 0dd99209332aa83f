// --cgroup auto: the kubelet's kubepods cgroup found for both cgroup
// drivers, on unified and hybrid hosts, from real mountinfo shapes.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cgroup2MountPoint, detectKubepodsCgroup } from '../../src/kernel/kubepods-cgroup';

const UNIFIED = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const HYBRID = `25 22 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
`;
const V1_ONLY = `27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
`;

describe('kubepods cgroup detection', () => {
  it('finds the cgroup v2 mount point on unified and hybrid hosts', () => {
    assert.equal(cgroup2MountPoint(UNIFIED), '/sys/fs/cgroup');
    assert.equal(cgroup2MountPoint(HYBRID), '/sys/fs/cgroup/unified');
    assert.equal(cgroup2MountPoint(V1_ONLY), undefined);
  });

  it('systemd driver: kubepods.slice; cgroupfs driver: kubepods', () => {
    assert.equal(detectKubepodsCgroup(UNIFIED, (p) => p === '/sys/fs/cgroup/kubepods.slice'), '/sys/fs/cgroup/kubepods.slice');
    assert.equal(detectKubepodsCgroup(UNIFIED, (p) => p === '/sys/fs/cgroup/kubepods'), '/sys/fs/cgroup/kubepods');
    assert.equal(detectKubepodsCgroup(HYBRID, (p) => p === '/sys/fs/cgroup/unified/kubepods.slice'), '/sys/fs/cgroup/unified/kubepods.slice');
  });

  it('says what it looked for and where when there is none', () => {
    assert.throws(() => detectKubepodsCgroup(UNIFIED, () => false), /no kubepods cgroup under \/sys\/fs\/cgroup \(looked for kubepods\.slice \(systemd driver\) and kubepods \(cgroupfs driver\)\).*give --cgroup DIR/);
    assert.throws(() => detectKubepodsCgroup(V1_ONLY, () => true), /no cgroup v2 hierarchy is mounted/);
  });
});
