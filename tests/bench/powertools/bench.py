"""Measures the Powertools handler (handler.py) the way shared/examples/consumer_bench.rs
measures the kit's consumer, against the DynamoDB of AWS_ENDPOINT_URL (DynamoDB Local in
`make bench`).

`bench.py cost --batches N`: N batches of 10 delivered, then each again; every DynamoDB call
(every attempt sent) counted by operation with a botocore `before-send` hook on the handler's
two clients, every batch timed. Writes target/bench/powertools-consumer.json.

`bench.py cold-start --runs N`: N fresh interpreters, each timed from its spawn to the handler
module imported with its clients created (the child then says so on stdout), then one batch
served; peak RSS from the child's rusage. Writes target/bench/powertools-cold-start.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import boto3

BATCH = 10
HERE = Path(__file__).resolve().parent
OUT = HERE.parents[2] / "target" / "bench"


class Context:
    """What Powertools reads of a Lambda context: 30 seconds to run."""

    function_name = "receipts"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:receipts"
    aws_request_id = "bench"

    def __init__(self):
        self._deadline = time.monotonic() + 30

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


def envelope(order_id):
    """A `payment.captured` event as the kit encodes one (CloudEvents attributes)."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "bench/payments",
        "type": "payment.captured",
        "subject": order_id,
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {"order_id": order_id, "amount_cents": 2500},
        "aggregatetype": "Payment",
        "sequence": 1,
        "schemaversion": 1,
        "correlationid": str(uuid.uuid4()),
        "causationid": None,
        "traceparent": "00-" + uuid.uuid4().hex + "-" + uuid.uuid4().hex[:16] + "-01",
    }


def batch(run, number):
    records = []
    for i in range(BATCH):
        order_id = f"{run}-{number}-{i}"
        records.append(
            {
                "messageId": f"m-{order_id}",
                "receiptHandle": f"rh-{order_id}",
                "body": json.dumps(envelope(order_id)),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:receipts-q",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def create_tables(suffix):
    client = boto3.client("dynamodb")
    receipts, idempotency = f"bench-pt-receipts-{suffix}", f"bench-pt-idempotency-{suffix}"
    client.create_table(
        TableName=receipts,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
    )
    # The table Powertools documents: partition key `id`, TTL on `expiration`.
    client.create_table(
        TableName=idempotency,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    return client, receipts, idempotency


def serve(handler, event):
    response = handler.lambda_handler(event, Context())
    failures = response.get("batchItemFailures")
    assert not failures, f"every record handled: {failures}"


def timing(batch_ms):
    per_record = [ms / BATCH for ms in batch_ms]
    return {
        "batches": len(per_record),
        "mean_ms_per_record": statistics.fmean(per_record),
        "median_ms_per_record": statistics.median(per_record),
    }


def timed(handler, events):
    batch_ms = []
    for event in events:
        started = time.perf_counter()
        serve(handler, event)
        batch_ms.append((time.perf_counter() - started) * 1000)
    return batch_ms


def cost(batches):
    suffix = uuid.uuid4().hex[:12]
    client, receipts, idempotency = create_tables(suffix)
    os.environ["RECEIPTS_TABLE"], os.environ["IDEMPOTENCY_TABLE"] = receipts, idempotency
    sys.path.insert(0, str(HERE))
    import handler

    calls = Counter()

    def count(event_name, **_):
        calls[event_name.rsplit(".", 1)[-1]] += 1

    for counted in (handler.dynamodb, handler.persistence_layer.client):
        counted.meta.events.register("before-send.dynamodb", count)

    print(f"powertools consumer: {batches} batches of {BATCH}…", file=sys.stderr)
    serve(handler, batch(f"{suffix}-warm", 0))  # opens the connections, as a warm environment has
    calls.clear()
    events = [batch(suffix, n) for n in range(batches)]
    first_ms = timed(handler, events)
    first_calls = dict(calls)
    calls.clear()
    redelivery_ms = timed(handler, events)
    redelivery_calls = dict(calls)
    for table in (receipts, idempotency):
        client.delete_table(TableName=table)
    records = batches * BATCH
    result = {
        "records": records,
        "first_calls_per_record": sum(first_calls.values()) / records,
        "first_calls": first_calls,
        "first": timing(first_ms),
        "redelivery_calls_per_record": sum(redelivery_calls.values()) / records,
        "redelivery_calls": redelivery_calls,
        "redelivery": timing(redelivery_ms),
    }
    print(
        f"  {result['first_calls_per_record']:.2f} calls/record first ({first_calls}), "
        f"{result['redelivery_calls_per_record']:.2f} redelivered ({redelivery_calls}); "
        f"{result['first']['mean_ms_per_record']:.2f} ms/record mean "
        f"({result['first']['median_ms_per_record']:.2f} median) first, "
        f"{result['redelivery']['mean_ms_per_record']:.2f} "
        f"({result['redelivery']['median_ms_per_record']:.2f}) redelivered",
        file=sys.stderr,
    )
    write("powertools-consumer.json", result)


# The child of one cold start: import the handler (its clients are created at import), say so,
# serve one batch, say so.
CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
import handler
print("imported", flush=True)
started = time.perf_counter()
event = {"Records": __import__("json").loads(sys.stdin.readline())}
print(handler.lambda_handler(event, __import__("bench").Context()) and "", flush=True)
print((time.perf_counter() - started) * 1000, flush=True)
"""


def cold_start(runs):
    suffix = uuid.uuid4().hex[:12]
    client, receipts, idempotency = create_tables(suffix)
    env = dict(os.environ, RECEIPTS_TABLE=receipts, IDEMPOTENCY_TABLE=idempotency)
    samples = []
    for n in range(runs):
        records = json.dumps(batch(f"{suffix}-cold", n)["Records"])
        spawned = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(HERE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert child.stdout.readline().strip() == "imported"
        init_ms = (time.perf_counter() - spawned) * 1000
        child.stdin.write(records + "\n")
        child.stdin.flush()
        child.stdout.readline()
        first_ms = float(child.stdout.readline())
        child.stdin.close()
        child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.returncode == 0, f"the cold start child failed ({child.returncode})"
        samples.append({"init_ms": init_ms, "first_invocation_ms": first_ms, "peak_rss_kib": usage.ru_maxrss})
    for table in (receipts, idempotency):
        client.delete_table(TableName=table)
    result = {
        "runs": runs,
        "measured": "interpreter spawn to the handler module imported with its clients created",
        "init_ms_median": statistics.median(s["init_ms"] for s in samples),
        "first_invocation_ms_median": statistics.median(s["first_invocation_ms"] for s in samples),
        "peak_rss_kib_max": max(s["peak_rss_kib"] for s in samples),
        "samples": samples,
    }
    print(
        f"powertools cold start: {result['init_ms_median']:.1f} ms to imported (median of {runs}), "
        f"first batch {result['first_invocation_ms_median']:.1f} ms, peak RSS "
        f"{result['peak_rss_kib_max'] / 1024:.1f} MB",
        file=sys.stderr,
    )
    write("powertools-cold-start.json", result)


def write(name, result):
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT / name}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cost", "cold-start"])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if args.what == "cost":
        cost(args.batches)
    else:
        cold_start(args.runs)


if __name__ == "__main__":
    main()
