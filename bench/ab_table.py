# Prints bench/ab.sh's JSON lines as one markdown table: per scenario and metric, the median
# (and every run) of "old" and "new", and new/old.
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        if "label" not in r:  # named.sh's h) line: printed as it is, not compared
            continue
        for k, v in r["metrics"].items():
            if v is not None:
                runs.setdefault((r["scenario"], k), {}).setdefault(r["label"], []).append(v)
print("| scenario | metric | old median (runs) | new median (runs) | new / old |")
print("|---|---|---|---|---|")
for (scenario, metric), by in runs.items():
    old, new = by.get("old", []), by.get("new", [])
    if not old or not new:
        continue
    mo, mn = statistics.median(old), statistics.median(new)
    fmt = lambda xs: " / ".join(f"{x:g}" for x in xs)
    ratio = f"{mn / mo:.3f}" if mo else "-"
    print(f"| {scenario} | {metric} | {mo:g} ({fmt(old)}) | {mn:g} ({fmt(new)}) | {ratio} |")
