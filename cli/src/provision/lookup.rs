//! Finding a stack an earlier run provisioned (`ripple up`, `ripple dev --keep`): the same
//! [`Deployment`] provisioning returns, read from the services without creating anything.
//!
//! Every resource the template declares must be there; the first one missing is reported, so a
//! caller can tell "not provisioned" from any other failure and provision then.

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use super::dynamodb::deployed_table;
use super::messaging::queue_arn;
use super::{
    Clients, DeployedQueue, DeployedSubscription, DeployedTable, DeployedTopic, Deployment,
    ProvisionError, aws_error, functions, know_queue, know_table, know_topic, pseudo, unexpected,
};
use crate::template::{self, Resolver, Stack, Template};

/// The stack `stack_name` of `template`, as it exists behind the clients of `aws`.
pub async fn lookup(
    aws: &SdkConfig,
    template: &Template,
    stack_name: &str,
) -> Result<Deployment, ProvisionError> {
    lookup_with(
        &Clients::new(aws),
        template.resolver(pseudo(aws, stack_name)),
    )
    .await
}

/// The stack `resolver` resolves, as it exists; [`ProvisionError::NotProvisioned`] names the
/// first resource that does not.
pub async fn lookup_with(
    clients: &Clients,
    mut resolver: Resolver<'_>,
) -> Result<Deployment, ProvisionError> {
    template::validate_stack_name(&resolver.pseudo().stack_name)?;
    let stack = resolver.stack()?;
    let pseudo = resolver.pseudo().clone();
    let missing = |resource: String| ProvisionError::NotProvisioned {
        stack: pseudo.stack_name.clone(),
        resource,
    };
    let mut tables = BTreeMap::new();
    for table in &stack.tables {
        let found = find_table(clients, table)
            .await?
            .ok_or_else(|| missing(format!("table {}", table.name)))?;
        know_table(&mut resolver, &found);
        tables.insert(table.logical_id.clone(), found);
    }
    let topic_arns = topic_arns(clients).await?;
    let mut topics = BTreeMap::new();
    for topic in &stack.topics {
        let arn = topic_arns
            .iter()
            .find(|arn| arn.rsplit(':').next() == Some(topic.name.as_str()))
            .ok_or_else(|| missing(format!("topic {}", topic.name)))?;
        let found = DeployedTopic {
            logical_id: topic.logical_id.clone(),
            name: topic.name.clone(),
            arn: arn.clone(),
        };
        know_topic(&mut resolver, &found);
        topics.insert(topic.logical_id.clone(), found);
    }
    let mut queues = BTreeMap::new();
    for queue in &stack.queues {
        let found = find_queue(clients, &stack, queue)
            .await?
            .ok_or_else(|| missing(format!("queue {}", queue.name)))?;
        know_queue(&mut resolver, &found);
        queues.insert(queue.logical_id.clone(), found);
    }
    let subscriptions = find_subscriptions(clients, &stack, &topics, &queues, &missing).await?;
    let functions = functions(&stack, &resolver)?;
    Ok(Deployment {
        stack_name: pseudo.stack_name.clone(),
        region: pseudo.region.clone(),
        stack,
        tables,
        topics,
        queues,
        subscriptions,
        functions,
    })
}

async fn find_table(
    clients: &Clients,
    table: &template::Table,
) -> Result<Option<DeployedTable>, ProvisionError> {
    let name = &table.name;
    let described = match clients
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
    {
        Ok(described) => described,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(aws_error("DescribeTable", name)(err)),
    };
    let description = described
        .table
        .ok_or_else(|| unexpected(name, "DescribeTable returned no table"))?;
    deployed_table(table, &description).map(Some)
}

/// Every topic ARN of the account and region.
async fn topic_arns(clients: &Clients) -> Result<Vec<String>, ProvisionError> {
    let mut arns = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = clients
            .sns
            .list_topics()
            .set_next_token(next.take())
            .send()
            .await
            .map_err(aws_error("ListTopics", "topics"))?;
        arns.extend(
            page.topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(str::to_owned)),
        );
        match page.next_token {
            Some(token) => next = Some(token),
            None => return Ok(arns),
        }
    }
}

async fn find_queue(
    clients: &Clients,
    stack: &Stack,
    queue: &template::Queue,
) -> Result<Option<DeployedQueue>, ProvisionError> {
    let name = &queue.name;
    let url = match clients.sqs.get_queue_url().queue_name(name).send().await {
        Ok(found) => found
            .queue_url
            .ok_or_else(|| unexpected(name, "GetQueueUrl returned no QueueUrl"))?,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_queue_does_not_exist()) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(aws_error("GetQueueUrl", name)(err)),
    };
    Ok(Some(DeployedQueue {
        logical_id: queue.logical_id.clone(),
        name: name.clone(),
        arn: queue_arn(clients, name, &url).await?,
        url,
        dead_letter: stack.is_dead_letter_queue(&queue.logical_id),
    }))
}

/// Each subscription of the template, found on its topic by its queue's ARN.
async fn find_subscriptions(
    clients: &Clients,
    stack: &Stack,
    topics: &BTreeMap<String, DeployedTopic>,
    queues: &BTreeMap<String, DeployedQueue>,
    missing: impl Fn(String) -> ProvisionError,
) -> Result<BTreeMap<String, DeployedSubscription>, ProvisionError> {
    let mut found = BTreeMap::new();
    for subscription in &stack.subscriptions {
        let (Some(topic), Some(queue)) = (
            topics.get(&subscription.topic),
            queues.get(&subscription.queue),
        ) else {
            return Err(missing(format!("subscription {}", subscription.logical_id)));
        };
        let Some(arn) = subscription_arn(clients, &topic.arn, &queue.arn).await? else {
            return Err(missing(format!(
                "subscription of {} to {}",
                queue.name, topic.name
            )));
        };
        found.insert(
            subscription.logical_id.clone(),
            DeployedSubscription {
                logical_id: subscription.logical_id.clone(),
                arn,
            },
        );
    }
    Ok(found)
}

async fn subscription_arn(
    clients: &Clients,
    topic_arn: &str,
    queue_arn: &str,
) -> Result<Option<String>, ProvisionError> {
    let mut next: Option<String> = None;
    loop {
        let page = clients
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(topic_arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(aws_error("ListSubscriptionsByTopic", topic_arn))?;
        let arn = page
            .subscriptions()
            .iter()
            .find(|s| s.protocol() == Some("sqs") && s.endpoint() == Some(queue_arn))
            .and_then(|s| s.subscription_arn());
        if let Some(arn) = arn {
            return Ok(Some(arn.to_owned()));
        }
        match page.next_token {
            Some(token) => next = Some(token),
            None => return Ok(None),
        }
    }
}
