//! The SDK side of the counter: the interceptor hooks, what each service's answers carry, and
//! the kit's client constructors that attach the process's counter.

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
#[cfg(any(feature = "store-dynamodb", feature = "idempotency-dynamodb"))]
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef, Output,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use super::{Attempt, RequestCounter};

/// The request body's size, kept from before it is sent until the attempt ends.
#[derive(Debug, Clone, Copy)]
struct RequestBytes(u64);

impl Storable for RequestBytes {
    type Storer = StoreReplace<Self>;
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "ripple-request-counter"
    }

    #[cfg(any(feature = "store-dynamodb", feature = "idempotency-dynamodb"))]
    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        dynamodb::ask_for_capacity(context.input_mut());
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let bytes = request_bytes(context.request());
        cfg.interceptor_state().store_put(RequestBytes(bytes));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let mut attempt = Attempt {
            request_bytes: cfg.load::<RequestBytes>().map_or(0, |b| b.0),
            response_bytes: context.response().map_or(0, response_bytes),
            ..Attempt::default()
        };
        match context.output_or_error() {
            Some(Ok(output)) => carried(metadata.name(), output, &mut attempt),
            _ => attempt.failed = true,
        }
        self.record(metadata.service(), metadata.name(), &attempt);
        RequestCounter::record_in_scope(metadata.service(), metadata.name(), &attempt);
        Ok(())
    }
}

fn request_bytes(request: &HttpRequest) -> u64 {
    request
        .body()
        .content_length()
        .or_else(|| header_length(request.headers().get("content-length")))
        .unwrap_or(0)
}

fn response_bytes(response: &HttpResponse) -> u64 {
    response
        .body()
        .bytes()
        .map(|b| b.len() as u64)
        .or_else(|| header_length(response.headers().get("content-length")))
        .unwrap_or(0)
}

fn header_length(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| v.trim().parse().ok())
}

/// What an answer carried: capacity units, messages.
fn carried(operation: &str, output: &Output, attempt: &mut Attempt) {
    #[cfg(any(feature = "store-dynamodb", feature = "idempotency-dynamodb"))]
    if let Some((read, write)) = dynamodb::units(operation, output) {
        attempt.read_units = read;
        attempt.write_units = write;
        return;
    }
    #[cfg(any(feature = "redelivery-sqs", feature = "quarantine-sqs"))]
    if let Some(received) =
        output.downcast_ref::<aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput>()
    {
        attempt.messages = received.messages().len() as u64;
        attempt.empty = attempt.messages == 0;
        return;
    }
    #[cfg(feature = "publish-sns")]
    {
        use aws_sdk_sns::operation::{publish::PublishOutput, publish_batch::PublishBatchOutput};
        if let Some(batch) = output.downcast_ref::<PublishBatchOutput>() {
            attempt.messages = batch.successful().len() as u64;
        } else if output.downcast_ref::<PublishOutput>().is_some() {
            attempt.messages = 1;
        }
    }
    // Each argument is read only under some of the features above.
    let _ = (operation, output, attempt);
}

#[cfg(any(feature = "store-dynamodb", feature = "idempotency-dynamodb"))]
pub(super) mod dynamodb {
    //! DynamoDB's consumed capacity: asked for on every operation that reports it, read back
    //! from every answer.

    use aws_sdk_dynamodb::operation::{
        batch_get_item::*, batch_write_item::*, delete_item::*, get_item::*, put_item::*, query::*,
        scan::*, transact_get_items::*, transact_write_items::*, update_item::*,
    };
    use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
    use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};

    /// Sets `ReturnConsumedCapacity::Total` on `input` if it is a DynamoDB operation that takes
    /// it and its caller asked for nothing (a caller asking for `Indexes` keeps it).
    pub(in crate::requests) fn ask_for_capacity(input: &mut Input) {
        macro_rules! ask {
            ($($input:ty),+) => {$(
                if let Some(input) = input.downcast_mut::<$input>() {
                    input.return_consumed_capacity.get_or_insert(ReturnConsumedCapacity::Total);
                    return;
                }
            )+};
        }
        ask!(
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            GetItemInput,
            QueryInput,
            ScanInput,
            TransactWriteItemsInput,
            TransactGetItemsInput,
            BatchGetItemInput,
            BatchWriteItemInput
        );
    }

    /// The (read, write) capacity units a DynamoDB answer reports; `None` if it is not one.
    pub(super) fn units(operation: &str, output: &Output) -> Option<(f64, f64)> {
        macro_rules! one {
            ($($output:ty),+) => {$(
                if let Some(output) = output.downcast_ref::<$output>() {
                    return Some(split(operation, output.consumed_capacity.iter()));
                }
            )+};
        }
        macro_rules! many {
            ($($output:ty),+) => {$(
                if let Some(output) = output.downcast_ref::<$output>() {
                    return Some(split(operation, output.consumed_capacity.iter().flatten()));
                }
            )+};
        }
        one!(
            PutItemOutput,
            UpdateItemOutput,
            DeleteItemOutput,
            GetItemOutput,
            QueryOutput,
            ScanOutput
        );
        many!(
            TransactWriteItemsOutput,
            TransactGetItemsOutput,
            BatchGetItemOutput,
            BatchWriteItemOutput
        );
        None
    }

    /// Read and write units apart: as reported when the answer splits them, otherwise the
    /// total counted by what the operation does.
    fn split<'a>(
        operation: &str,
        consumed: impl Iterator<Item = &'a ConsumedCapacity>,
    ) -> (f64, f64) {
        let writes = super::super::is_write(operation);
        consumed.fold((0.0, 0.0), |(read, write), c| {
            match (c.read_capacity_units, c.write_capacity_units) {
                (None, None) => {
                    let total = c.capacity_units.unwrap_or(0.0);
                    if writes {
                        (read, write + total)
                    } else {
                        (read + total, write)
                    }
                }
                (r, w) => (read + r.unwrap_or(0.0), write + w.unwrap_or(0.0)),
            }
        })
    }
}

/// A DynamoDB client from `aws` whose requests the process's [`RequestCounter`] counts.
#[cfg(any(feature = "store-dynamodb", feature = "idempotency-dynamodb"))]
pub fn dynamodb_client(aws: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(aws)
        .interceptor(RequestCounter::global().clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// An SNS client from `aws` whose requests the process's [`RequestCounter`] counts.
#[cfg(feature = "publish-sns")]
pub fn sns_client(aws: &SdkConfig) -> aws_sdk_sns::Client {
    let config = aws_sdk_sns::config::Builder::from(aws)
        .interceptor(RequestCounter::global().clone())
        .build();
    aws_sdk_sns::Client::from_conf(config)
}

/// An SQS client from `aws` whose requests the process's [`RequestCounter`] counts.
#[cfg(any(feature = "redelivery-sqs", feature = "quarantine-sqs"))]
pub fn sqs_client(aws: &SdkConfig) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::config::Builder::from(aws)
        .interceptor(RequestCounter::global().clone())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}
