"""The Powertools for AWS Lambda (Python) side of `make bench`: the job of the kit's consumer
benchmark (shared/examples/consumer_bench.rs), written the way Powertools documents it.

An SQS batch of `payment.captured` events (CloudEvents envelopes as the bodies, raw SNS
delivery); each issues a receipt, one conditional put of `Receipt#<order id>`, made idempotent by
`idempotent_function` on the event's id with its records in DynamoDB
(`DynamoDBPersistenceLayer`), the batch by `BatchProcessor` and `process_partial_response`.

Environment: RECEIPTS_TABLE (`pk` string, `sk` number) and IDEMPOTENCY_TABLE (`id` string).
"""

import json
import os

import boto3
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

RECEIPTS_TABLE = os.environ["RECEIPTS_TABLE"]

processor = BatchProcessor(event_type=EventType.SQS)
persistence_layer = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
# The event's own id, as the kit's dedupe marker uses: a message the queue delivers again is a
# duplicate, and so is the same event published twice.
config = IdempotencyConfig(event_key_jmespath="powertools_json(body).id")
dynamodb = boto3.client("dynamodb")


@idempotent_function(data_keyword_argument="record", config=config, persistence_store=persistence_layer)
def record_handler(record: SQSRecord):
    event = json.loads(record.body)
    data = event["data"]
    receipt = f"Receipt#{data['order_id']}"
    dynamodb.put_item(
        TableName=RECEIPTS_TABLE,
        Item={
            "pk": {"S": receipt},
            "sk": {"N": "1"},
            "type": {"S": "receipt.issued"},
            "causationid": {"S": event["id"]},
            "data": {"S": json.dumps({"order_id": data["order_id"], "amount_cents": data["amount_cents"]})},
        },
        ConditionExpression="attribute_not_exists(pk)",
    )
    return {"receipt": receipt}


def lambda_handler(event, context):
    config.register_lambda_context(context)
    return process_partial_response(
        event=event,
        record_handler=record_handler,
        processor=processor,
        context=context,
    )
