#!/usr/bin/env bash
# Instructions per record of the kit's SQS consumer, from callgrind: deterministic where a timer
# is not, so that a change in the batch path's overhead shows up whatever the machine's load.
#
# Runs `consumer_bench cpu` (canned DynamoDB answers: parse, admit, decide, build, sign and
# serialise the transaction, the metrics line; no network) twice, counting only inside its
# `handle_all`, and divides the difference in instructions by the difference in records, so
# that start-up and the first batch's one-time work drop out. Writes target/bench/cpu-per-record.json.
#
# tests/bench/cpu_per_record.sh [path to the consumer_bench example binary]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-target/local-release/examples/consumer_bench}"
command -v valgrind >/dev/null || { echo "cpu per record: valgrind not found (apt-get install valgrind)"; exit 1; }
[[ -x "$bin" ]] || { echo "cpu per record: no $bin (cargo build -p ripple-kit --profile local-release --example consumer_bench)"; exit 1; }
small=5 large=25 batch=10
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Instructions counted inside handle_all for $1 batches.
instructions() {
    valgrind --tool=callgrind --callgrind-out-file="$out/$1.out" --toggle-collect='consumer_bench::handle_all' \
        "$bin" cpu --batches "$1" >/dev/null 2>"$out/$1.log" \
        || { cat "$out/$1.log"; exit 1; }
    awk '/^(summary|totals):/ { print $2; exit }' "$out/$1.out"
}

# Instructions of $1 batches spent inside the function named $2 (inclusive), 0 if not seen.
inside() {
    callgrind_annotate --inclusive=yes "$out/$1.out" 2>/dev/null \
        | awk -v f="$2" '!found && index($0, f) { gsub(",", "", $1); n = $1; found = 1 } END { print found ? n : 0 }'
}

few=$(instructions $small)
many=$(instructions $large)
records=$(( (large - small) * batch ))
per_record=$(( (many - few) / records ))
# The SDK's share: one attempt of the call (serialise, sign, the canned transport, deserialise),
# and within it the SigV4 signature.
sdk=$(( ($(inside $large ':aws_smithy_runtime::client::orchestrator::try_op::') - $(inside $small ':aws_smithy_runtime::client::orchestrator::try_op::')) / records ))
sign=$(( ($(inside $large ':aws_smithy_runtime::client::orchestrator::auth::sign_request ') - $(inside $small ':aws_smithy_runtime::client::orchestrator::auth::sign_request ')) / records ))
mkdir -p target/bench
printf '{"instructions_per_record": %d, "sdk_call_per_record": %d, "sigv4_per_record": %d, "records": %d, "instructions": [%d, %d], "batches": [%d, %d]}\n' \
    "$per_record" "$sdk" "$sign" "$records" "$few" "$many" "$small" "$large" > target/bench/cpu-per-record.json
echo "consumer batch path: $per_record instructions per record (callgrind, $records records), of which the SDK's call $sdk (its SigV4 signature $sign)"
