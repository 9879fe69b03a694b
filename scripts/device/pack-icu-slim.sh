#!/usr/bin/env bash
# Packs ICU (headers + libicuuc/libicudata/libicui18n) for the GPU machine, which lacks it, as one
# xz tarball in .devdeps/ (~9.5 MB instead of ~20 MB of .deb files): the working tree that travels
# to the device is capped at 64 MiB. scripts/device/e2e-run.sh unpacks it. Run from the project
# root after ../shared/device/pack-deps.sh (which packs Highway into .devdeps).
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download libicu-dev libicu72 >/dev/null)
for f in "$tmp"/*.deb; do dpkg -x "$f" "$tmp/root"; done
L=usr/lib/x86_64-linux-gnu
mkdir -p .devdeps
(cd "$tmp/root" && tar cJf - usr/include/unicode $L/libicuuc.so* $L/libicudata.so* \
  $L/libicui18n.so* $L/pkgconfig) > .devdeps/icu-slim.tar.xz
rm -f .devdeps/debs/libicu*.deb
du -h .devdeps/icu-slim.tar.xz
