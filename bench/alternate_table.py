# Prints bench/alternate.sh's results as one markdown table: per scenario and metric, each
# build's median over the rounds (every run in brackets) and its ratio to the first build's.
import glob, json, os, statistics, sys
out, specs = sys.argv[1], sys.argv[2:]
labels = [s.split("=", 1)[0] for s in specs]
runs, order = {}, []
for label in labels:
    for path in sorted(glob.glob(os.path.join(out, f"{label}.*.jsonl"))):
        for line in open(path):
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            for k, v in r["metrics"].items():
                key = (r["label"], k)
                if key not in runs:
                    runs[key] = {}
                    order.append(key)
                if v is not None:
                    runs[key].setdefault(label, []).append(v)
fmt = lambda x: f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
head = " | ".join(f"{l} median (runs)" for l in labels)
ratios = " | ".join(f"{l} / {labels[0]}" for l in labels[1:])
print(f"| scenario | metric | {head} | {ratios} |")
print("|---" * (2 + len(labels) + len(labels) - 1) + "|")
for key in order:
    by = runs[key]
    if labels[0] not in by:
        continue
    base = statistics.median(by[labels[0]])
    cells, rs = [], []
    for l in labels:
        xs = by.get(l, [])
        cells.append(f"{fmt(statistics.median(xs))} ({' / '.join(fmt(x) for x in xs)})" if xs else "-")
        if l != labels[0]:
            rs.append(f"{statistics.median(xs) / base:.3f}" if xs and base else "-")
    print(f"| {key[0]} | {key[1]} | {' | '.join(cells)} | {' | '.join(rs)} |")
