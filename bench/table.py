# Prints hearth-bench JSON lines (with a "label") as one markdown table: median and
# min–max per scenario and metric, with the machine it ran on. Used by run.sh and cluster.sh.
import json, statistics, sys, platform, subprocess, os
rows = {}
order = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    for k, v in r["metrics"].items():
        key = (r["label"], k)
        if key not in rows:
            rows[key] = []
            order.append(key)
        if v is not None:
            rows[key].append(v)
def cpu():
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            return l.split(":", 1)[1].strip()
    return "?"
mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
print(f"Machine: {os.cpu_count()} cores, {cpu()}, {int(mem)//1024//1024} GiB, Linux {platform.release()}, {rustc}; generator on the same machine.\n")
print("| scenario | metric | median | min – max | runs |")
print("|---|---|---|---|---|")
for key in order:
    vals = rows[key]
    if not vals:
        continue
    med = statistics.median(vals)
    fmt = lambda x: f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    print(f"| {key[0]} | {key[1]} | {fmt(med)} | {fmt(min(vals))} – {fmt(max(vals))} | {len(vals)} |")
