"""Forward (or backward) times of ours and of each peer across the merged runs kept in
benches/gpu-runs/, one row per shape: how much each side moves from run to run, against the gap
between them. Reads each run's bench.json (ours) and peers.json (peers.py).

  python3 benches/explore/run_spread.py [fwd|bwd] [RUN ...]
  (default: fwd over session13 session15 session16 session17/run1 session17)
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "gpu-runs"
DTYPES = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def main():
    args = sys.argv[1:]
    which = args.pop(0) if args and args[0] in ("fwd", "bwd") else "fwd"
    runs = args or ["session13", "session15", "session16", "session17/run1", "session17"]
    table = {}
    for run in runs:
        for row in json.loads((ROOT / run / "bench.json").read_text())["rows"]:
            if row.get("op") == "rmsnorm" and row.get(which):
                key = (row["m"], row["n"], row["dtype"])
                table.setdefault(key, {}).setdefault("ours", {})[run] = row[which]["median_us"]
        for row in json.loads((ROOT / run / "peers.json").read_text())["rows"]:
            ms = row.get(f"{which}_ms")
            if ms:
                key = (row["M"], row["N"], DTYPES.get(row["dtype"], row["dtype"]))
                table.setdefault(key, {}).setdefault(row["peer"], {})[run] = ms * 1000
    print(f"{which} median us per run ({', '.join(runs)}); spread = (max - min) / min")
    print()
    print("| shape | dtype | who | " + " | ".join(runs) + " | spread |")
    print("|---|---|---|" + "---|" * len(runs) + "---|")
    for (m, n, dtype), by_who in table.items():
        if "ours" not in by_who:
            continue
        for who, times in by_who.items():
            cells = [f"{times[r]:.1f}" if r in times else "-" for r in runs]
            vals = list(times.values())
            spread = (max(vals) - min(vals)) / min(vals)
            print(f"| {m}x{n} | {dtype} | {who} | " + " | ".join(cells) + f" | {spread:.1%} |")


if __name__ == "__main__":
    main()
