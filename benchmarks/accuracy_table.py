"""One markdown table from `distill_accuracy.py` JSON lines: a row per set, a column per evaluation
network, mean ± std over the network seeds, and each set's paired difference from a baseline set
(the same network seeds, so the seed-to-seed variation shared by both sets cancels).

    python benchmarks/accuracy_table.py random=RUNS/xa-random.jsonl dm=RUNS/xa-dm.jsonl \
        d2m=RUNS/xa-s0-d2m.jsonl --baseline random --ipc 10

Each argument is `[NAME=]FILE`; NAME (default: each line's method) labels the file's rows, so two
generators' `d2m` lines can sit side by side. Lines of other IPCs, and cost lines, are ignored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="[NAME=]FILE")
    p.add_argument("--ipc", type=int, required=True)
    p.add_argument("--baseline", help="NAME of the set the paired differences are taken from")
    return p.parse_args(argv)


def read_sets(arguments: list[str], ipc: int) -> dict[str, dict[str, dict]]:
    """{set name: {model: the JSON line}}, in the order given."""
    sets: dict[str, dict[str, dict]] = {}
    for argument in arguments:
        name, _, path = argument.rpartition("=")
        if not Path(path).is_file():
            raise SystemExit(f"no such file: {path}")
        for line in Path(path).read_text().splitlines():
            record = json.loads(line)
            if record.get("benchmark") == "distill_accuracy" and record["ipc"] == ipc:
                sets.setdefault(name or record["method"], {})[record["model"]] = record
    return sets


def paired(record: dict, base: dict) -> str:
    if record["runs"] != base["runs"] or record["seed"] != base["seed"]:
        raise SystemExit(f"{record['method']} and {base['method']} on {record['model']} were not evaluated on the same "
                         "network seeds: no paired difference")
    differences = [a - b for a, b in zip(record["accuracies"], base["accuracies"])]
    return f"{sum(differences) / len(differences):+.2f} ({', '.join(f'{d:+.2f}' for d in differences)})"


def table(sets: dict[str, dict[str, dict]], baseline: str | None) -> str:
    models = list(dict.fromkeys(model for by_model in sets.values() for model in by_model))
    if baseline is not None and baseline not in sets:
        raise SystemExit(f"no set named {baseline!r}; the sets are {', '.join(sets)}")
    lines = ["| set | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for name, by_model in sets.items():
        cells = [f"{r['mean']:.2f} ± {r['std']:.2f}" if (r := by_model.get(model)) else "not run" for model in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if baseline is not None and name != baseline:
            base = sets[baseline]
            cells = [paired(by_model[model], base[model]) if model in by_model and model in base else "—"
                     for model in models]
            lines.append(f"| {name} − {baseline}, paired | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> str:
    args = parse_args(argv)
    text = table(read_sets(args.files, args.ipc), args.baseline)
    print(text)
    return text


if __name__ == "__main__":
    main()
