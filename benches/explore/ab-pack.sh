#!/usr/bin/env bash
# Packs CLI payloads (xz files from `scripts/device-build.sh cli`) as .device/ab.tar.xz for
# benches/explore/ab-builds.sh: the first becomes `a`, the next `b`, then `c`, in one xz stream
# with a 256 MiB dictionary, so each binary after the first costs little (~35 MB for two, ~2 min
# a binary to pack).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: $0 OLD.xz NEW.xz [NEWER.xz]" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
names=(a b c); i=0
for p in "$@"; do xz -dc "$p" > "$tmp/${names[$i]}"; i=$((i + 1)); done
mkdir -p .device
tar -cf - -C "$tmp" "${names[@]:0:$#}" | xz -T1 --lzma2=preset=6,dict=256MiB -c > .device/ab.tar.xz
ls -la .device/ab.tar.xz
