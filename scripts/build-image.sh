#!/usr/bin/env bash
# Builds the sluice container image without any container registry and
# writes it as an OCI archive (`npm run image`).
#
#   1. mmdebstrap makes two Debian trixie root filesystems from Debian's
#      mirror: the build base (image/build-packages.txt) and the runtime base
#      (image/runtime-packages.txt), imported into buildah's local storage as
#      localhost/sluice-{build,runtime}-base:<key of the package list>; a
#      rebuild with the same lists fetches nothing from Debian.
#   2. buildah builds image/Containerfile on them, reusing cached layers
#      (npm packages come from the npm registry, as with `npm ci`).
#   3. buildah writes the image to an OCI archive, loadable on a node with
#      `ctr -n k8s.io images import` or `podman load`.
#
# Environment: SLUICE_IMAGE_OUT (archive path, default
# build/image/sluice-<version>.oci.tar), SLUICE_IMAGE_TAG (default
# ghcr.io/sluice-mesh/sluice:<version>, the name deploy/ uses), SLUICE_DEBIAN_MIRROR (default
# http://deb.debian.org/debian), SLUICE_BUILD_CA (a CA bundle npm trusts
# during the build, default the host's /etc/ssl/certs/ca-certificates.crt,
# for build hosts behind a TLS-inspecting proxy).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "image: run as root (mmdebstrap and buildah build root filesystems)" >&2
  exit 1
fi
for tool in mmdebstrap buildah; do
  command -v "$tool" >/dev/null || { echo "image: $tool is missing (apt-get install mmdebstrap buildah)" >&2; exit 1; }
done

version=$(node -p "require('./package.json').version")
out=${SLUICE_IMAGE_OUT:-build/image/sluice-$version.oci.tar}
# The name deploy/ uses: imported on a node, the kubelet finds it there
# (imagePullPolicy IfNotPresent, the default for a versioned tag).
tag=${SLUICE_IMAGE_TAG:-ghcr.io/sluice-mesh/sluice:$version}
mirror=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
work=$(mktemp -d /var/tmp/sluice-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$(dirname "$out")"

# Prints the local image name of one base, building it first if needed.
base_image() {
  local kind=$1 list=image/$1-packages.txt key tarball name packages
  packages=$(sed -e 's/#.*//' "$list" | tr -s ' \n' ' ' | xargs | tr ' ' ',')
  key=$(printf '%s\n' "$suite" "$mirror" "$packages" "$(cat image/ensure-packages.sh)" | sha256sum | cut -c1-16)
  name=localhost/sluice-$kind-base:$key
  if buildah inspect --type image "$name" >/dev/null 2>&1; then
    echo "$name"; return
  fi
  tarball=$work/$kind-base.tar
  echo "image: mmdebstrap $suite $kind base ($packages)" >&2
  # Like debian:trixie-slim: no documentation, manual pages or locales.
  mmdebstrap --variant=apt --format=tar --include="$packages" \
    --dpkgopt=force-unsafe-io \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    "$suite" "$tarball" "$mirror" >&2
  local ctr
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$tarball" / >&2
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr" >&2
  buildah commit --quiet --rm "$ctr" "$name" >&2
  rm -f "$tarball"
  echo "$name"
}

build_base=$(base_image build)
runtime_base=$(base_image runtime)

volumes=()
ca=${SLUICE_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca" ] && volumes+=(--volume "$(readlink -f "$ca"):/run/sluice-build-ca.crt:ro")

echo "image: building $tag" >&2
buildah bud --layers --pull=never --isolation=chroot --network=host \
  --ignorefile image/Containerfile.dockerignore \
  --build-arg BUILD_BASE="$build_base" \
  --build-arg RUNTIME_BASE="$runtime_base" \
  --build-arg NPM_REGISTRY="$(npm config get registry)" \
  "${volumes[@]}" \
  -f image/Containerfile -t "$tag" .

rm -f "$out"
buildah push --quiet "$tag" "oci-archive:$out:$tag"
echo "image: $tag written to $out ($(du -m "$out" | cut -f1) MiB)" >&2
