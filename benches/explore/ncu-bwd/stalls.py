"""Summarize ncu's per-SASS-instruction table (`ncu --page source --csv --print-source sass`):
the stall reasons over all samples, the instructions with the most samples, and the executed
instruction mix per warp and row (WARP_ROWS: the kernel's warp-rows, e.g. 112 programs x 16
warps x 146 rows).

    python3 stalls.py sass.csv [WARP_ROWS]
"""
import collections
import csv
import sys


def num(x):
    try:
        return float(x.replace(",", ""))
    except ValueError:
        return 0.0


rows = list(csv.reader(open(sys.argv[1])))
head = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
h = rows[head]
data = [r for r in rows[head + 1:] if len(r) == len(h)]
stall_cols = [i for i, c in enumerate(h) if c.startswith("stall_") and "Not Issued" not in c]
total = sum(num(r[2]) for r in data)
print(f"stall samples {total:.0f}, instructions executed {sum(num(r[5]) for r in data):.0f}")
print("stall reasons (share of all samples):")
sums = {h[i]: sum(num(r[i]) for r in data) for i in stall_cols}
for name, v in sorted(sums.items(), key=lambda x: -x[1])[:10]:
    print(f"  {name:24s} {v / total * 100:5.1f}%")
print("instructions with the most samples (index in the kernel's SASS, share, top reasons):")
for i in sorted(range(len(data)), key=lambda i: -num(data[i][2]))[:12]:
    r = data[i]
    top = sorted(((num(r[j]), h[j]) for j in stall_cols), reverse=True)[:2]
    reasons = ", ".join(f"{n} {v / max(num(r[2]), 1) * 100:.0f}%" for v, n in top if v)
    print(f"  {i:5d} {num(r[2]) / total * 100:5.1f}%  {r[1].strip()[:56]:56s} {reasons}")
if len(sys.argv) > 2:
    per = float(sys.argv[2])
    mix = collections.Counter()
    for r in data:
        s = r[1].strip()
        s = s.split(None, 1)[1] if s.startswith("@") else s
        mix[s.split()[0].split(".")[0]] += num(r[5])
    print(f"executed instructions a warp-row: {sum(mix.values()) / per:.0f}")
    print("  " + ", ".join(f"{op} {v / per:.0f}" for op, v in mix.most_common(14)))
