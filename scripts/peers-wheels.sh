#!/usr/bin/env bash
# Fetches the peers that the GPU machine lacks (liger-kernel 0.8.5, quack-kernels 0.6.5 and what
# they need beyond torch/triton there) as Python 3.12 wheels, and packs them for the device calls
# (each call carries at most 64 MiB; see ../shared/DEVICE.md and the top of scripts/device-bench.sh):
#   .device-site1/cutlass-dsl-libs-cu13.tar.xz.part1  nvidia-cutlass-dsl-libs-cu13 unzipped, tarred
#                                               and xz'd (x86 BCJ filter + preset 9; 60.2 MB), all
#                                               but its last 12 MB: goes alone, in a call of its own
#   .device-site2/*.whl, *.part2                the other 7 wheels (10.5 MB) and the tarball's last
#                                               12 MB: go with .device (the CLI)
# Both folders and the download cache .whl/peers are git-ignored. Runs here (no GPU); re-running
# reuses what is already downloaded and packed. The xz step is slow here: ~15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=.whl/peers
BIG=nvidia-cutlass-dsl-libs-cu13==4.8.1
SMALL=(liger-kernel==0.8.5 quack-kernels==0.6.5 nvidia-cutlass-dsl==4.8.1 nvidia-cutlass-dsl-libs-base==4.8.1
       nvidia-cutlass-dsl-libs-core==4.8.1 apache-tvm-ffi==0.1.15.post2 torch-c-dlpack-ext)
mkdir -p "$CACHE"
if ! python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_24_x86_64 --platform any -d "$CACHE" "$BIG" "${SMALL[@]}"; then
  echo "peers-wheels: pip could not fetch the wheels (is PyPI reachable?)" >&2
  exit 1
fi

big=$(ls "$CACHE"/nvidia_cutlass_dsl_libs_cu13-4.8.1-*.whl)
# The packed library stays in the download cache; the two folders get their parts of it.
tarball="$CACHE/cutlass-dsl-libs-cu13.tar.xz"
if [ ! -s "$tarball" ] || [ "$big" -nt "$tarball" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  python3 -m zipfile -e "$big" "$tmp"
  echo "peers-wheels: packing $(basename "$big") with xz (minutes)"
  # The library is mostly x86-64 code: the BCJ filter makes it ~5% smaller and faster to compress.
  tar -C "$tmp" -cf - . | xz --x86 --lzma2=preset=9 -T2 --block-size=128MiB > "$tarball.part"
  mv "$tarball.part" "$tarball"
fi

rm -rf .device-site1 .device-site2 && mkdir -p .device-site1 .device-site2
for w in "$CACHE"/*.whl; do
  [ "$w" = "$big" ] || cp "$w" .device-site2/
done
# The tarball's last SPLIT_TAIL bytes (default 12 MB) go with call 2, so that call 1 fits 64 MiB
# with the tracked tree: call 1 keeps the first part ($SITE.parts on the machine) and call 2 joins
# them (scripts/device-bench.sh).
first=$(( $(stat -c %s "$tarball") - ${SPLIT_TAIL:-12000000} ))
head -c "$first" "$tarball" > ".device-site1/$(basename "$tarball").part1"
tail -c +"$((first + 1))" "$tarball" > ".device-site2/$(basename "$tarball").part2"

limit=$((64 * 1024 * 1024))
s1=$(cat .device-site1/* | wc -c)
s2=$(cat .device-site2/* | wc -c)
cli=$(stat -c %s .device/tritonite.xz 2>/dev/null || echo 0)
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
echo "peers-wheels: .device-site1 $s1 bytes (call 1, with the tracked tree: $((s1 + tree)) of $limit)"
echo "peers-wheels: .device-site2 $s2 bytes in $(ls .device-site2 | wc -l) files" \
     "(call 2 with .device $cli and the tracked tree: $((s2 + cli + tree)) of $limit)"
[ $((s1 + tree)) -lt $limit ] || echo "peers-wheels: WARNING call 1 would exceed 64 MiB" >&2
[ $((s2 + cli + tree)) -lt $limit ] || echo "peers-wheels: WARNING call 2 would exceed 64 MiB" >&2
ls -la .device-site1 .device-site2
