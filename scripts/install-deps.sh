#!/usr/bin/env bash
# Debian packages sluice needs to build and test: the BPF toolchain and libbpf,
# cmake for the addon, iproute2/util-linux for the simulated cluster, and the
# real clients and servers the tests and benchmarks use as workloads;
# mmdebstrap and buildah build the container image without a registry, and
# a private containerd (started by the image test, never as a service) runs it.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get, bpffs and cgroups need it)" >&2
  exit 1
fi

packages=(
  clang llvm libbpf-dev bpftool pkg-config cmake make g++ linux-libc-dev
  iproute2 util-linux procps containernetworking-plugins
  curl iperf3 haproxy wrk nginx-light redis-server redis-tools tcpdump
  prometheus
  mmdebstrap buildah containerd
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # These packages are used as tools inside the simulated cluster: keep their
  # services (redis, haproxy, nginx, prometheus on :9090) from starting on the
  # machine itself. prometheus goes without its recommends (node-exporter);
  # the telemetry e2e test runs its own, inside a node's netns.
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ -n "$added_policy" ] && rm -f "$policy"
fi

# bpffs for pinned maps and links.
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
fi
