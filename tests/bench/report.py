"""Prints the one side-by-side table of `make bench` and writes target/bench/bench.json.

It reads what the bench's steps wrote into target/bench/ (a figure whose file is missing is
left out, and said so):
  ripple-consumer.json       shared/examples/consumer_bench.rs cost
  powertools-consumer.json   tests/bench/powertools/bench.py cost
  cpu-per-record.json        tests/bench/cpu_per_record.sh
  cold-start.jsonl           ripple invoke --cold-start, one line per run of each function
  powertools-cold-start.json tests/bench/powertools/bench.py cold-start
  stock-history.json         tests/examples/stock_history.rs
  dev.json                   ripple dev --orders 200 --json

Ratios are Powertools ÷ Ripple: above 1, Ripple costs less.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cold_start

BENCH = Path(__file__).resolve().parents[2] / "target" / "bench"
# Binary sizes in decimal megabytes, as the README gives them (4.46 MB = 4 456 976 bytes).
MB = 1_000_000


def load(name):
    path = BENCH / name
    if not path.exists():
        print(f"bench: {path} is missing; its figures are left out", file=sys.stderr)
        return None
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    if name == "dev.json":
        # What `ripple dev --json` printed: its summary is the last JSON line.
        return json.loads([line for line in path.read_text().splitlines() if line.startswith("{")][-1])
    return json.loads(path.read_text())


def figure(name, unit, ripple, powertools=None, target=None, met=None, note="", comparable=True):
    ratio = powertools / ripple if comparable and powertools is not None and ripple else None
    return {
        "figure": name,
        "unit": unit,
        "ripple": ripple,
        "powertools": powertools,
        "ratio": ratio,
        "target": target,
        "met": met,
        "note": note,
    }


def consumer_figures(ripple, powertools):
    if ripple is None:
        return []
    marked = [r for r in ripple if r.get("marker", "transaction") == "transaction"]
    default = next(r for r in marked if r["concurrency"] == "default")
    serial = next((r for r in marked if r["concurrency"] == "1"), None)
    keyed = next((r for r in ripple if r.get("marker") == "event"), None)
    pt = powertools or {}
    rows = []
    for when, key in (("first delivery", "first"), ("redelivery", "redelivery")):
        calls = default[f"{key}_calls_per_record"]
        rows.append(
            figure(
                f"DynamoDB calls per record, {when}",
                "calls",
                calls,
                pt.get(f"{key}_calls_per_record"),
                "1 (Powertools 3 and 1)",
                calls <= 1,
                ", ".join(f"{op} {n}" for op, n in default[f"{key}_calls"].items()),
            )
        )
    for when, key in (("first delivery", "first"), ("redelivery", "redelivery")):
        ms = default[key]["mean_ms_per_record"]
        pt_ms = pt.get(key, {}).get("mean_ms_per_record")
        rows.append(
            figure(
                f"ms per record, {when} (mean of {default[key]['batches']} batches of 10)",
                "ms",
                ms,
                pt_ms,
                "≥3× below Powertools",
                None if pt_ms is None else pt_ms >= 3 * ms,
                f"median {default[key]['median_ms_per_record']:.2f}"
                + (f" vs {pt[key]['median_ms_per_record']:.2f}" if pt_ms is not None else "")
                + "; Ripple handles 4 records of a batch at once, Powertools one after another",
            )
        )
    if serial is not None:
        ms = serial["first"]["mean_ms_per_record"]
        pt_ms = pt.get("first", {}).get("mean_ms_per_record")
        rows.append(
            figure(
                "ms per record, first delivery, one record at a time",
                "ms",
                ms,
                pt_ms,
                "≥3× below Powertools",
                None if pt_ms is None else pt_ms >= 3 * ms,
                f"median {serial['first']['median_ms_per_record']:.2f}",
            )
        )
        if pt_ms is not None:
            per_call = ms / serial["first_calls_per_record"]
            pt_per_call = pt_ms / pt["first_calls_per_record"]
            rows.append(
                figure(
                    "ms per DynamoDB call, one record at a time (the emulator's answer time)",
                    "ms",
                    per_call,
                    pt_per_call,
                    note="what dominates ms per record on the emulator",
                )
            )
    if keyed is not None:
        rows.extend(keyed_figures(keyed, pt))
    return rows


def keyed_figures(keyed, pt):
    """The receipt as its own dedupe marker (Reaction::AppendKeyed), one record at a time."""
    rows = []
    for when, key in (("first delivery", "first"), ("redelivery", "redelivery")):
        calls = keyed[f"{key}_calls_per_record"]
        ms = keyed[key]["mean_ms_per_record"]
        pt_ms = pt.get(key, {}).get("mean_ms_per_record")
        rows.append(
            figure(
                f"receipt as its own marker: DynamoDB calls per record, {when}",
                "calls",
                calls,
                pt.get(f"{key}_calls_per_record"),
                "1 (Powertools 3 and 1)",
                calls <= 1,
                ", ".join(f"{op} {n}" for op, n in keyed[f"{key}_calls"].items()),
            )
        )
        rows.append(
            figure(
                f"receipt as its own marker: ms per record, {when}, one record at a time",
                "ms",
                ms,
                pt_ms,
                "≥3× below Powertools",
                None if pt_ms is None else pt_ms >= 3 * ms,
                f"median {keyed[key]['median_ms_per_record']:.2f}"
                + (f" vs {pt[key]['median_ms_per_record']:.2f}" if pt_ms is not None else ""),
            )
        )
    return rows


def cpu_figures(cpu):
    if cpu is None:
        return []
    total, sdk, sign = cpu["instructions_per_record"], cpu["sdk_call_per_record"], cpu["sigv4_per_record"]
    return [
        figure(
            "instructions per record, consumer batch path (callgrind)",
            "instructions",
            total,
            note=f"parse, admit, decide, build the transaction: {total - sdk:,}; the SDK's call "
            f"(serialise, sign, canned answer): {sdk:,}, of which SigV4 {sign:,} (SHA-256 in software "
            "under valgrind); no network",
        )
    ]


def stripped_bytes(path):
    """The size of `path` with its symbols stripped, as the Lambda profile strips them."""
    if not path.exists() or shutil.which("strip") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bootstrap"
        subprocess.run(["strip", "-o", str(out), str(path)], check=True)
        return out.stat().st_size


def cold_start_figures(runs, powertools):
    cold = cold_start.by_function(runs or [])
    if not cold:
        return []
    pt = powertools or {}
    slowest = max(cold, key=lambda r: r["init_ms"])
    init = slowest["init_ms"]
    first = max(cold, key=lambda r: r["first_invocation_ms"])
    rss = max(cold, key=lambda r: r["peak_rss_kib"])
    rss_mb = rss["peak_rss_kib"] / 1024
    pt_rss = pt.get("peak_rss_kib_max")
    each = f"median of {min(r['runs'] for r in cold)} cold starts each"
    rows = [
        figure(
            "cold start to first Runtime API next, slowest function",
            "ms",
            init,
            pt.get("init_ms_median"),
            "≤ 20 ms",
            init <= 20,
            f"{slowest['function']} ({each}; its slowest {slowest['init_ms_max']:.1f}); "
            "Powertools: interpreter spawn to handler imported with clients (median)",
        ),
        figure(
            "first invocation, slowest function",
            "ms",
            first["first_invocation_ms"],
            pt.get("first_invocation_ms_median"),
            note=f"{first['function']} on its sample event ({each}); "
            "Powertools: its first batch of 10 (not the same job: no ratio)",
            comparable=False,
        ),
        figure(
            "peak RSS after the first invocation, largest function",
            "MB",
            rss_mb,
            None if pt_rss is None else pt_rss / 1024,
            "≤ 25 MB",
            rss_mb <= 25,
            f"{rss['function']} (the largest of its runs)",
        ),
    ]
    profile = slowest.get("profile", "local-release")
    sizes = {}
    for row in cold:
        lambda_build = BENCH.parent / "lambda" / row["function"] / "bootstrap"
        if lambda_build.exists():
            sizes[row["function"]] = (lambda_build.stat().st_size, "arm64 release of make build")
        else:
            size = stripped_bytes(BENCH.parent / profile / row["function"])
            if size is not None:
                sizes[row["function"]] = (size, f"x86-64 {profile}, stripped")
    if sizes:
        largest = max(sizes, key=lambda f: sizes[f][0])
        size, what = sizes[largest]
        rows.append(
            figure(
                "bootstrap size, largest function",
                "MB",
                size / MB,
                target="≤ 5 MB",
                met=size <= 5 * MB,
                note=f"{largest}, {what}",
            )
        )
    return rows


def stock_figures(history):
    if not history:
        return []
    calls = [sum(r["after_snapshot"]["calls"].values()) for r in history]
    # "Flat after the first snapshot": a history shorter than the snapshot interval has none,
    # and is read whole (shown, not judged).
    snapshotted = [r for r in history if r["prior_events"] >= r.get("snapshot_every", 0)] or history
    items = [r["after_snapshot"]["items_read"] for r in snapshotted]
    warm_calls = [sum(r["warm"]["calls"].values()) for r in history]
    warm_items = [r["warm"]["items_read"] for r in history]
    lengths = f"{history[0]['prior_events']:,} to {history[-1]['prior_events']:,} prior events"
    snapshotted_lengths = f"{snapshotted[0]['prior_events']:,} to {snapshotted[-1]['prior_events']:,} prior events"
    return [
        figure(
            f"DynamoDB calls per reservation after the snapshot, {lengths}",
            "calls",
            max(calls),
            target="flat",
            met=len(set(calls)) == 1,
            note=" / ".join(map(str, calls)),
        ),
        figure(
            f"items read per reservation after the snapshot, {snapshotted_lengths}",
            "items",
            max(items),
            target="flat",
            met=max(items) - min(items) <= 1,
            note=" / ".join(f"{r['prior_events']:,}: {r['after_snapshot']['items_read']}" for r in history)
            + " (below the snapshot interval the stream is read whole)",
        ),
        figure(
            f"DynamoDB calls and items read per warm reservation (copies), {lengths}",
            "calls",
            max(warm_calls),
            target="1 call, 0 items",
            met=max(warm_calls) == 1 and max(warm_items) == 0,
            note="calls " + " / ".join(map(str, warm_calls)) + "; items " + " / ".join(map(str, warm_items)),
        ),
    ]


def dev_figures(dev):
    if dev is None:
        return []
    seconds = dev["elapsed_ms"] / 1000
    return [
        figure(
            f"local pipeline, {dev['orders_sent']} orders until quiet (bounded by the emulator)",
            "orders/s",
            dev["orders_sent"] / seconds if seconds else None,
            note=f"{seconds:.1f} s; {dev['events_stored']} events stored, {dev['events_published']} published, "
            f"{dev['messages_consumed']} consumed, {dev['dlq_messages']} in DLQs, "
            f"stock conserved: {dev['stock_conserved']}",
        )
    ]


def cell(value):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 1000 else f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(rows):
    headers = ["figure", "unit", "Ripple", "Powertools", "ratio", "target", "met"]
    table = [
        [
            r["figure"],
            r["unit"],
            cell(r["ripple"]),
            cell(r["powertools"]),
            "—" if r["ratio"] is None else f"{r['ratio']:.1f}×",
            r["target"] or "—",
            {True: "yes", False: "MISSED", None: "—"}[r["met"]],
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print(line.format(*row))
    print("\nratio: Powertools ÷ Ripple (above 1, Ripple costs less)")
    for r in rows:
        if r["note"]:
            print(f"  {r['figure']}: {r['note']}")


def main():
    rows = (
        consumer_figures(load("ripple-consumer.json"), load("powertools-consumer.json"))
        + cpu_figures(load("cpu-per-record.json"))
        + cold_start_figures(load("cold-start.jsonl"), load("powertools-cold-start.json"))
        + stock_figures(load("stock-history.json"))
        + dev_figures(load("dev.json"))
    )
    print_table(rows)
    (BENCH / "bench.json").write_text(json.dumps({"figures": rows}, indent=2))
    print(f"\nwrote {BENCH / 'bench.json'}")


if __name__ == "__main__":
    main()
