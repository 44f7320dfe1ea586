"""Prints the cold-start figures `make bench` collected (one `ripple invoke --cold-start` JSON
object per line of target/bench/cold-start.jsonl) as a table."""

import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "target/bench/cold-start.jsonl"
rows = [json.loads(line) for line in open(path) if line.startswith("{")]
print(f"{'function':<18}{'init ms':>9}{'1st call ms':>13}{'peak RSS MB':>13}{'binary MB':>11}")
for row in rows:
    cold = row["cold_start"]
    print(
        f"{row['function']:<18}{cold['init_ms']:>9.1f}{cold['first_invocation_ms']:>13.1f}"
        f"{(cold['peak_rss_kib'] or 0) / 1024:>13.1f}{row['binary_bytes'] / 1e6:>11.2f}"
    )
