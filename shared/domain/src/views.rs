//! Where order views live: the [`ViewStore`] port, its DynamoDB adapter and an in-memory twin,
//! and a view rebuilt from the event store ([`rebuild_from`]).
//!
//! One item per order in the views table: `id` (S, the order id), `view` (S, the view as JSON) and
//! `version` (N, how many events the view holds over all its streams). A write names the version
//! it read, `attribute_not_exists(id) OR version = :expected`, so two projections of the same
//! order racing each other cannot overwrite one another: the loser reloads and applies again. A
//! put retried by the SDK after its first attempt was stored finds its own view in the way and
//! succeeds.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::inventory::Reservation;
use crate::order::Order;
use crate::payment::Payment;
use crate::view::{OrderView, ViewEvent};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::{Aggregate, EventStore, StoreError};

/// The streams an order view is folded from.
pub const SOURCE_STREAMS: [&str; 3] = [Order::TYPE, Reservation::TYPE, Payment::TYPE];

/// The view of `order_id` folded from the complete history of its streams in `store`: what a
/// view behind (or ahead of) its deliveries is replaced with.
pub async fn rebuild_from<S, E>(store: &S, order_id: &str) -> Result<OrderView, E>
where
    S: EventStore,
    E: From<StoreError> + From<EnvelopeError>,
{
    let mut events = Vec::new();
    for aggregate_type in SOURCE_STREAMS {
        for envelope in store.read_stream(aggregate_type, order_id, 1).await? {
            if let Some(event) = ViewEvent::from_envelope(&envelope)? {
                events.push(event);
            }
        }
    }
    Ok(OrderView::rebuild(order_id, &events))
}

/// Attribute names of the views table.
pub mod attr {
    /// Hash key: the order id.
    pub const ID: &str = "id";
    /// The view as JSON text.
    pub const VIEW: &str = "view";
    /// Events the view holds, over all its streams (the optimistic-lock version).
    pub const VERSION: &str = "version";
}

/// A view as stored, with the version a write must name to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredView {
    /// The view.
    pub view: OrderView,
    /// Its stored version.
    pub version: u64,
}

/// What the views table failed with.
#[derive(Debug, thiserror::Error)]
pub enum ViewStoreError {
    /// Another writer replaced the view since it was read: reload and apply again.
    #[error("view of order {order_id} changed since it was read")]
    Conflict {
        /// The order.
        order_id: String,
    },
    /// A stored item is not a view this function wrote.
    #[error("stored view of order {order_id} is unreadable: {reason}")]
    Corrupt {
        /// The order.
        order_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// DynamoDB failed (throttling, network, permissions); the SDK already retried.
    #[error("views table request failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Order views by order id, with optimistic locking.
pub trait ViewStore: Send + Sync {
    /// The stored view of `order_id`, if any.
    fn get(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<StoredView>, ViewStoreError>> + Send;

    /// Stores `view` if the stored version is still `expected` (0: no view stored yet).
    fn put(
        &self,
        view: &OrderView,
        expected: u64,
    ) -> impl Future<Output = Result<(), ViewStoreError>> + Send;

    /// The stored view of `order_id` (what the API returns), if the projection has written one.
    fn view(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<OrderView>, ViewStoreError>> + Send {
        async move { Ok(self.get(order_id).await?.map(|stored| stored.view)) }
    }
}

/// The DynamoDB item of `view`.
pub fn view_item(view: &OrderView) -> Result<HashMap<String, AttributeValue>, ViewStoreError> {
    let json = serde_json::to_string(view).map_err(|e| ViewStoreError::Backend(Box::new(e)))?;
    Ok(HashMap::from([
        (
            attr::ID.to_owned(),
            AttributeValue::S(view.order_id.clone()),
        ),
        (attr::VIEW.to_owned(), AttributeValue::S(json)),
        (
            attr::VERSION.to_owned(),
            AttributeValue::N(view.events_applied().to_string()),
        ),
    ]))
}

/// The view in a DynamoDB item.
pub fn view_from_item(
    order_id: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<StoredView, ViewStoreError> {
    let corrupt = |reason: &str| ViewStoreError::Corrupt {
        order_id: order_id.to_owned(),
        reason: reason.to_owned(),
    };
    let json = match item.get(attr::VIEW) {
        Some(AttributeValue::S(json)) => json,
        _ => return Err(corrupt("no string `view`")),
    };
    let version = match item.get(attr::VERSION) {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| corrupt("`version` is not an integer"))?,
        _ => return Err(corrupt("no number `version`")),
    };
    let view = serde_json::from_str(json).map_err(|e| corrupt(&e.to_string()))?;
    Ok(StoredView { view, version })
}

/// The views table on DynamoDB.
#[derive(Clone, Debug)]
pub struct DynamoViewStore {
    client: Client,
    table: String,
}

impl DynamoViewStore {
    /// The store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoViewStore {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl ViewStore for DynamoViewStore {
    async fn get(&self, order_id: &str) -> Result<Option<StoredView>, ViewStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(order_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ViewStoreError::Backend(Box::new(e)))?;
        output
            .item()
            .map(|item| view_from_item(order_id, item))
            .transpose()
    }

    async fn put(&self, view: &OrderView, expected: u64) -> Result<(), ViewStoreError> {
        let item = view_item(view)?;
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#id) OR #version = :expected")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#version", attr::VERSION)
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        match err.as_service_error() {
            // The SDK retried a put whose first attempt was stored (its answer was lost): the
            // view in the way is this very one, so the write succeeded.
            Some(PutItemError::ConditionalCheckFailedException(failed))
                if failed.item() == Some(&item) =>
            {
                Ok(())
            }
            Some(PutItemError::ConditionalCheckFailedException(_)) => {
                Err(ViewStoreError::Conflict {
                    order_id: view.order_id.clone(),
                })
            }
            _ => Err(ViewStoreError::Backend(Box::new(err))),
        }
    }
}

/// Views in memory, stored as JSON like the table, with the same version check.
#[derive(Debug, Default)]
pub struct InMemoryViewStore {
    items: Mutex<HashMap<String, JsonAndVersion>>,
}

/// A stored item: the view's JSON text and its version.
type JsonAndVersion = (String, u64);

impl InMemoryViewStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, JsonAndVersion>>, ViewStoreError> {
        self.items
            .lock()
            .map_err(|_| ViewStoreError::Backend("in-memory view store poisoned".into()))
    }
}

impl ViewStore for InMemoryViewStore {
    async fn get(&self, order_id: &str) -> Result<Option<StoredView>, ViewStoreError> {
        let items = self.lock()?;
        let Some((json, version)) = items.get(order_id) else {
            return Ok(None);
        };
        let view = serde_json::from_str(json).map_err(|e| ViewStoreError::Corrupt {
            order_id: order_id.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Some(StoredView {
            view,
            version: *version,
        }))
    }

    async fn put(&self, view: &OrderView, expected: u64) -> Result<(), ViewStoreError> {
        let json = serde_json::to_string(view).map_err(|e| ViewStoreError::Backend(Box::new(e)))?;
        let mut items = self.lock()?;
        if let Some((_, version)) = items.get(&view.order_id)
            && *version != expected
        {
            return Err(ViewStoreError::Conflict {
                order_id: view.order_id.clone(),
            });
        }
        items.insert(view.order_id.clone(), (json, view.events_applied()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::confirmed_flow;
    use crate::view::ViewEvent;

    const ORDER: &str = "o-1";

    #[tokio::test]
    async fn the_in_memory_store_refuses_a_stale_write() {
        let views = InMemoryViewStore::new();
        let view = OrderView::new(ORDER);
        views.put(&view, 0).await.unwrap();
        assert!(matches!(
            views.put(&view, 3).await,
            Err(ViewStoreError::Conflict { .. })
        ));
    }
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
    use aws_smithy_mocks::{mock, mock_client};

    fn view() -> OrderView {
        let flow = confirmed_flow(ORDER);
        let events: Vec<ViewEvent> = flow
            .iter()
            .map(|e| ViewEvent::from_envelope(e).unwrap().unwrap())
            .collect();
        OrderView::rebuild(ORDER, &events)
    }

    #[tokio::test]
    async fn a_put_names_the_version_it_read() {
        let put = mock!(Client::put_item)
            .match_requests(|req| {
                req.table_name() == Some("views")
                    && req.condition_expression()
                        == Some("attribute_not_exists(#id) OR #version = :expected")
                    && req
                        .expression_attribute_values()
                        .and_then(|v| v.get(":expected"))
                        == Some(&AttributeValue::N("3".into()))
                    && req.item().and_then(|i| i.get("version"))
                        == Some(&AttributeValue::N("4".into()))
                    && req.item().and_then(|i| i.get("id"))
                        == Some(&AttributeValue::S(ORDER.into()))
            })
            .then_output(|| PutItemOutput::builder().build());
        let client = mock_client!(aws_sdk_dynamodb, [&put]);
        DynamoViewStore::new(client, "views")
            .put(&view(), 3)
            .await
            .unwrap();
        assert_eq!(put.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_failed_condition_is_a_conflict() {
        let put = mock!(Client::put_item).then_error(|| {
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder().build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, [&put]);
        let err = DynamoViewStore::new(client, "views")
            .put(&view(), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, ViewStoreError::Conflict { ref order_id } if order_id == ORDER));
    }

    #[tokio::test]
    async fn a_put_whose_answer_was_lost_finds_its_own_view_and_succeeds() {
        let written = view();
        let ours = view_item(&written).unwrap();
        let mut theirs = ours.clone();
        theirs.insert("version".into(), AttributeValue::N("5".into()));
        for (in_the_way, succeeds) in [(ours, true), (theirs, false)] {
            // Stored, answered with a 500; the SDK's retry meets the condition and DynamoDB
            // returns the item in the way.
            let put = mock!(Client::put_item)
                .match_requests(|req| {
                    req.return_values_on_condition_check_failure()
                        == Some(&ReturnValuesOnConditionCheckFailure::AllOld)
                })
                .sequence()
                .http_status(500, None)
                .error(move || {
                    PutItemError::ConditionalCheckFailedException(
                        ConditionalCheckFailedException::builder()
                            .set_item(Some(in_the_way.clone()))
                            .build(),
                    )
                })
                .build();
            let client = mock_client!(aws_sdk_dynamodb, [&put]);
            let result = DynamoViewStore::new(client, "views").put(&written, 3).await;
            assert_eq!(put.num_calls(), 2, "the SDK retried the put");
            match (succeeds, result) {
                (true, Ok(())) => {}
                (false, Err(ViewStoreError::Conflict { .. })) => {}
                (_, other) => panic!("in the way: ours = {succeeds}; got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_stored_item_reads_back_as_the_view() {
        let expected = view();
        let item = view_item(&expected).unwrap();
        let get = mock!(Client::get_item)
            .match_requests(|req| req.consistent_read() == Some(true))
            .then_output(move || {
                GetItemOutput::builder()
                    .set_item(Some(item.clone()))
                    .build()
            });
        let missing = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
        let client = mock_client!(
            aws_sdk_dynamodb,
            aws_smithy_mocks::RuleMode::Sequential,
            [&get, &missing]
        );
        let store = DynamoViewStore::new(client, "views");
        assert_eq!(store.view(ORDER).await.unwrap(), Some(expected));
        assert_eq!(store.view("o-404").await.unwrap(), None);
    }

    #[test]
    fn an_item_without_a_view_is_corrupt() {
        let item =
            std::collections::HashMap::from([("id".to_owned(), AttributeValue::S(ORDER.into()))]);
        assert!(matches!(
            view_from_item(ORDER, &item),
            Err(ViewStoreError::Corrupt { .. })
        ));
    }
}
