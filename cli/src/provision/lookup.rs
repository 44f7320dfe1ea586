//! Finding a stack that exists: one an earlier run provisioned (`ripple up`, `ripple dev
//! --keep`), found by the names the runner gives its resources, or one CloudFormation deployed
//! (`sam deploy`), found by the physical ids CloudFormation lists. Either way the result is the
//! same [`Deployment`] provisioning returns, read from the services without creating anything.
//!
//! Every resource the template declares must be there; the first one missing is reported, so a
//! caller can tell "not provisioned" from any other failure and provision then.

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use super::cloudformation::{self, CfnStack};
use super::dynamodb::deployed_table;
use super::messaging::queue_arn;
use super::{
    Clients, DeployedQueue, DeployedSubscription, DeployedTable, DeployedTopic, Deployment, Origin,
    ProvisionError, aws_error, functions, know_queue, know_table, know_topic, pseudo, unexpected,
};
use crate::template::{self, REF, Resolver, Stack, Template};

/// Where the stack is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Find {
    /// CloudFormation first; a stack it does not have (or an emulator without CloudFormation)
    /// by the runner's names.
    Anywhere,
    /// Only among the stacks CloudFormation has (a real account: nothing there is named by
    /// the runner).
    CloudFormation,
}

/// The stack `stack_name` of `template`, as it exists behind the clients of `aws`: deployed by
/// CloudFormation, or else provisioned by the runner.
pub async fn lookup(
    aws: &SdkConfig,
    template: &Template,
    stack_name: &str,
) -> Result<Deployment, ProvisionError> {
    find(
        &Clients::new(aws),
        template,
        &pseudo(aws, stack_name),
        Find::Anywhere,
    )
    .await
}

/// The stack `pseudo` names, looked for where `scope` says.
pub async fn find(
    clients: &Clients,
    template: &Template,
    pseudo: &template::PseudoParameters,
    scope: Find,
) -> Result<Deployment, ProvisionError> {
    let name = &pseudo.stack_name;
    let deployed = match cloudformation::describe(&clients.cloudformation, name).await {
        Ok(found) => found,
        Err(err) if scope == Find::Anywhere => {
            tracing::debug!(stack = %name, error = %ripple_kit::telemetry::error_chain(&err), "no CloudFormation here; the stack is looked for by the runner's names");
            None
        }
        Err(err) => return Err(err),
    };
    match (deployed, scope) {
        (Some(cfn), _) => {
            tracing::info!(stack = %name, status = %cfn.status, "found the stack in CloudFormation");
            lookup_deployed(clients, template, pseudo.clone(), &cfn).await
        }
        (None, Find::Anywhere) => {
            lookup_with(clients, super::local_resolver(template, pseudo.clone())?).await
        }
        (None, Find::CloudFormation) => Err(ProvisionError::NotDeployed {
            stack: name.clone(),
            region: pseudo.region.clone(),
        }),
    }
}

/// The stack `resolver` resolves, as the runner provisioned it; [`ProvisionError::NotProvisioned`]
/// names the first resource that does not exist.
pub async fn lookup_with(
    clients: &Clients,
    resolver: Resolver<'_>,
) -> Result<Deployment, ProvisionError> {
    template::validate_stack_name(&resolver.pseudo().stack_name)?;
    let stack = resolver.stack()?;
    read_back(clients, resolver, stack, None, Origin::Ripple).await
}

/// The stack CloudFormation describes as `cfn`: resolved with the parameters it was deployed
/// with, in its account and region, each resource under the physical id CloudFormation lists.
pub async fn lookup_deployed(
    clients: &Clients,
    template: &Template,
    pseudo: template::PseudoParameters,
    cfn: &CfnStack,
) -> Result<Deployment, ProvisionError> {
    cloudformation::usable(&cfn.status).map_err(|why| ProvisionError::NotUsable {
        stack: cfn.name.clone(),
        status: cfn.status.clone(),
        why,
    })?;
    let mut pseudo = pseudo;
    if let Some(account) = cfn.account_id() {
        pseudo = pseudo.with_account_id(account);
    }
    if let Some(region) = cfn.region() {
        pseudo.region = region.to_owned();
    }
    let mut resolver = template.resolver(pseudo);
    for (key, value) in &cfn.parameters {
        resolver = resolver.with_parameter(key, value);
    }
    let mut stack = resolver.stack()?;
    physical_names(&mut stack, &mut resolver, cfn)?;
    let origin = Origin::CloudFormation {
        stack_id: cfn.stack_id.clone(),
        status: cfn.status.clone(),
        outputs: cfn.outputs.clone(),
    };
    read_back(clients, resolver, stack, Some(cfn), origin).await
}

/// Gives every table, topic, queue and function of `stack` the name CloudFormation made for
/// it, and tells `resolver` each function's name and ARN (the rest is read back from the
/// services).
fn physical_names(
    stack: &mut Stack,
    resolver: &mut Resolver<'_>,
    cfn: &CfnStack,
) -> Result<(), ProvisionError> {
    let physical = |kind: &str, logical_id: &str| {
        cfn.physical_id(logical_id)
            .map(str::to_owned)
            .ok_or_else(|| ProvisionError::NotProvisioned {
                stack: cfn.name.clone(),
                resource: format!("{kind} {logical_id} (CloudFormation lists no such resource)"),
            })
    };
    let last = |id: &str, separator: char| id.rsplit(separator).next().unwrap_or(id).to_owned();
    for table in &mut stack.tables {
        table.name = physical("table", &table.logical_id)?;
    }
    for topic in &mut stack.topics {
        topic.name = last(&physical("topic", &topic.logical_id)?, ':');
    }
    for queue in &mut stack.queues {
        queue.name = last(
            physical("queue", &queue.logical_id)?.trim_end_matches('/'),
            '/',
        );
    }
    let pseudo = resolver.pseudo().clone();
    for function in &mut stack.functions {
        function.name = physical("function", &function.logical_id)?;
        let arn = format!(
            "arn:{}:lambda:{}:{}:function:{}",
            pseudo.partition, pseudo.region, pseudo.account_id, function.name
        );
        resolver.know(&function.logical_id, REF, &function.name);
        resolver.know(&function.logical_id, "Arn", arn);
    }
    Ok(())
}

/// Reads every resource of `stack` back from the services, under the names it holds (a topic
/// by the ARN CloudFormation lists when there is one).
async fn read_back(
    clients: &Clients,
    mut resolver: Resolver<'_>,
    stack: Stack,
    cfn: Option<&CfnStack>,
    origin: Origin,
) -> Result<Deployment, ProvisionError> {
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
    let listed = match cfn {
        Some(_) => Vec::new(),
        None => topic_arns(clients).await?,
    };
    let mut topics = BTreeMap::new();
    for topic in &stack.topics {
        let arn = match cfn.and_then(|c| c.physical_id(&topic.logical_id)) {
            Some(arn) => arn,
            None => listed
                .iter()
                .find(|arn| arn.rsplit(':').next() == Some(topic.name.as_str()))
                .ok_or_else(|| missing(format!("topic {}", topic.name)))?,
        };
        let found = DeployedTopic {
            logical_id: topic.logical_id.clone(),
            name: topic.name.clone(),
            arn: arn.to_owned(),
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
        origin,
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
