#!/usr/bin/env bash
# On the GPU machine (carry .device and benches/explore/harness/ptx, made by make-ptx.sh): the
# forward variants of cases.txt timed by the peers' harness (ptx_do_bench.py: raw launches of our
# cubins under do_bench, rotated with torch.compile's) and the same shapes by `tritonite bench`
# (our CUDA events and L2 flush), in turn.
set -uo pipefail
cd "$(dirname "$0")/../../.."
source benches/explore/tuned-cli.sh
shapes=$(grep -v "^#" benches/explore/harness/cases.txt | awk '{print $2"x"$3":"$4}' | sort -u | paste -sd,)
for round in ${ROUNDS:-1 2}; do
  timeout 250 python3 benches/explore/harness/ptx_do_bench.py > "$OUT/dobench-$round.md" 2> "$OUT/dobench-$round.err"
  echo "== do_bench round $round (exit $?)"; cat "$OUT/dobench-$round.md"; tail -3 "$OUT/dobench-$round.err"
  [ "$round" = 1 ] || continue
  timeout 120 .device/tritonite bench --shapes "$shapes" --out "$OUT/bench-$round" > "$OUT/bench-$round.log" 2>&1
  echo "== tritonite bench round $round (exit $?)"; grep -E "^\|" "$OUT/bench-$round.log" | head -12
done
