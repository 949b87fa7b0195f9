"""Summarizes ncu's per-SM active cycles (run.sh): the kernel's duration and DRAM throughput,
how many SMs were busy, and the spread of their active cycles against the elapsed cycles."""
import re
import sys

text = open(sys.argv[1]).read()
for line in text.splitlines():
    if re.search(r"gpu__time_duration|dram__throughput|sm__cycles_elapsed.max|sm__cycles_active.(max|avg)\b", line):
        print("  " + " ".join(line.split()[:4]))
m = re.search(r"sm__cycles_active.sum\s+\S+\s+\(([^)]*)\)", text)
if not m:
    # Older ncu prints instance values after a semicolon-separated list.
    m = re.search(r"sm__cycles_active.sum\s+\S+\s+([0-9.,; ]+)", text)
if not m:
    print("  no per-SM values found")
    sys.exit(0)
vals = [float(v.replace(",", "")) for v in re.split(r"[;\s]+", m.group(1).strip()) if v]
elapsed = re.search(r"sm__cycles_elapsed.max\s+\S+\s+([0-9.,]+)", text)
busy = sorted(v for v in vals if v > 0)
print(f"  SMs: {len(vals)}, busy {len(busy)}")
if busy and elapsed:
    e = float(elapsed.group(1).replace(",", ""))
    q = lambda p: busy[min(len(busy) - 1, int(p * len(busy)))]
    print("  busy SMs' active / elapsed: min %.3f p10 %.3f median %.3f p90 %.3f max %.3f" % tuple(x / e for x in (busy[0], q(0.1), q(0.5), q(0.9), busy[-1])))
