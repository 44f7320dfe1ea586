//! Tables: created as CloudFormation creates them, ACTIVE with their stream ENABLED and TTL on
//! before anything uses them.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
    TimeToLiveSpecification,
};

use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::TableDescription;

use super::{Clients, DeployedTable, POLL, ProvisionError, WAIT_LIMIT, aws_error, unexpected};
use crate::template;

pub(super) async fn create_table(
    clients: &Clients,
    table: &template::Table,
) -> Result<DeployedTable, ProvisionError> {
    let name = &table.name;
    match create_request(clients, table)?.send().await {
        Ok(_) => tracing::debug!(table = %name, "table created"),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table = %name, "table exists");
        }
        Err(err) => return Err(aws_error("CreateTable", name)(err)),
    }
    let description = wait_until_active(clients, name).await?;
    let deployed = deployed_table(table, &description)?;
    if let Some(stream_arn) = &deployed.stream_arn {
        wait_for_stream(clients, name, stream_arn).await?;
    }
    if let Some(attribute) = &table.ttl_attribute {
        enable_ttl(clients, name, attribute).await?;
    }
    Ok(deployed)
}

/// The table as DescribeTable describes it: its ARN, and its stream's when it has one.
pub(super) fn deployed_table(
    table: &template::Table,
    description: &TableDescription,
) -> Result<DeployedTable, ProvisionError> {
    let name = &table.name;
    let arn = description
        .table_arn()
        .ok_or_else(|| unexpected(name, "DescribeTable returned no TableArn"))?
        .to_owned();
    let stream_arn = match &table.stream_view_type {
        None => None,
        Some(_) => Some(
            description
                .latest_stream_arn()
                .ok_or_else(|| unexpected(name, "the table has no stream"))?
                .to_owned(),
        ),
    };
    Ok(DeployedTable {
        logical_id: table.logical_id.clone(),
        name: name.clone(),
        arn,
        stream_arn,
    })
}

/// CreateTable with the table's keys, indexes and stream, on demand.
fn create_request(
    clients: &Clients,
    table: &template::Table,
) -> Result<CreateTableFluentBuilder, ProvisionError> {
    let name = &table.name;
    let keys = |schema: &[template::KeyElement]| {
        schema
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(&k.attribute_name)
                    .key_type(KeyType::from(k.key_type.as_str()))
                    .build()
                    .map_err(aws_error("CreateTable", name))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let mut request = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&table.key_schema)?));
    for attribute in &table.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()
                .map_err(aws_error("CreateTable", name))?,
        );
    }
    for index in &table.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(index.projection_type.as_str()))
            .set_non_key_attributes(
                (!index.non_key_attributes.is_empty()).then(|| index.non_key_attributes.clone()),
            )
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(keys(&index.key_schema)?))
                .projection(projection)
                .build()
                .map_err(aws_error("CreateTable", name))?,
        );
    }
    if let Some(view) = &table.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(aws_error("CreateTable", name))?,
        );
    }
    Ok(request)
}

/// Waits for ACTIVE (indexes included), as CloudFormation does before dependents are created.
async fn wait_until_active(
    clients: &Clients,
    name: &str,
) -> Result<TableDescription, ProvisionError> {
    let started = tokio::time::Instant::now();
    loop {
        let described = clients
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(aws_error("DescribeTable", name))?;
        let Some(description) = described.table else {
            return Err(unexpected(name, "DescribeTable returned no table"));
        };
        let indexes_active = description
            .global_secondary_indexes()
            .iter()
            .all(|i| i.index_status().is_none_or(|s| s.as_str() == "ACTIVE"));
        if description.table_status() == Some(&TableStatus::Active) && indexes_active {
            return Ok(description);
        }
        if started.elapsed() > WAIT_LIMIT {
            return Err(ProvisionError::Timeout {
                resource: name.to_owned(),
                state: "ACTIVE",
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn enable_ttl(clients: &Clients, name: &str, attribute: &str) -> Result<(), ProvisionError> {
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(aws_error("UpdateTimeToLive", name))?;
    match clients
        .dynamodb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // Enabling TTL twice is a ValidationException ("TimeToLive is already enabled").
        Err(err) if is_already_enabled(&err) => Ok(()),
        Err(err) => Err(aws_error("UpdateTimeToLive", name)(err)),
    }
}

fn is_already_enabled<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().is_some_and(|e| {
        e.code() == Some("ValidationException")
            && e.message().is_some_and(|m| m.contains("already enabled"))
    })
}

async fn wait_for_stream(
    clients: &Clients,
    table: &str,
    stream_arn: &str,
) -> Result<(), ProvisionError> {
    let started = tokio::time::Instant::now();
    loop {
        let described = clients
            .streams
            .describe_stream()
            .stream_arn(stream_arn)
            .limit(1)
            .send()
            .await
            .map_err(aws_error("DescribeStream", stream_arn))?;
        let status = described
            .stream_description()
            .and_then(|d| d.stream_status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ENABLED") {
            return Ok(());
        }
        if started.elapsed() > WAIT_LIMIT {
            return Err(ProvisionError::Timeout {
                resource: format!("stream of {table}"),
                state: "ENABLED",
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
