"""Prints the cold-start figures `make bench` collected (one `ripple invoke --cold-start` JSON
object per line of target/bench/cold-start.jsonl, several runs of each function) as a table:
per function, the median of its runs for the times, the largest for the peak RSS.

report.py reads the same file through `by_function`."""

import json
import statistics
import sys


def by_function(rows):
    """One summary per function, in the order the functions first appear."""
    runs = {}
    for row in rows:
        runs.setdefault(row["function"], []).append(row)
    summaries = []
    for function, its_runs in runs.items():
        colds = [r["cold_start"] for r in its_runs]
        summaries.append(
            {
                "function": function,
                "runs": len(its_runs),
                "profile": its_runs[0].get("profile", "local-release"),
                "binary_bytes": its_runs[0]["binary_bytes"],
                "init_ms": statistics.median(c["init_ms"] for c in colds),
                "init_ms_max": max(c["init_ms"] for c in colds),
                "first_invocation_ms": statistics.median(c["first_invocation_ms"] for c in colds),
                "peak_rss_kib": max((c["peak_rss_kib"] or 0) for c in colds),
            }
        )
    return summaries


def read(path):
    return [json.loads(line) for line in open(path) if line.startswith("{")]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "target/bench/cold-start.jsonl"
    summaries = by_function(read(path))
    if not summaries:
        sys.exit(f"bench: no cold start in {path}")
    print(
        f"{'function':<18}{'runs':>5}{'init ms':>9}{'(max)':>8}{'1st call ms':>13}"
        f"{'peak RSS MB':>13}{'binary MB':>11}"
    )
    for s in summaries:
        print(
            f"{s['function']:<18}{s['runs']:>5}{s['init_ms']:>9.1f}{s['init_ms_max']:>8.1f}"
            f"{s['first_invocation_ms']:>13.1f}{s['peak_rss_kib'] / 1024:>13.1f}"
            f"{s['binary_bytes'] / 1e6:>11.2f}"
        )
    print("init and 1st call: the median of the runs; peak RSS: the largest")


if __name__ == "__main__":
    main()
