#!/bin/sh
# Installs the Debian packages a list names (one per line, # comments) that
# the base image does not have yet. The bases `npm run image` makes with
# mmdebstrap already hold them all, so nothing is fetched there; on a
# registry's debian:trixie image they are installed with apt-get.
set -eu
list=$1
missing=""
for p in $(sed -e 's/#.*//' "$list"); do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
  rm -rf /var/lib/apt/lists/*
fi
