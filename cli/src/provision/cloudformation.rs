//! A stack CloudFormation deployed (`sam deploy`): its status, parameters, outputs and every
//! resource's physical id, read with `DescribeStacks` and `ListStackResources`, so the operator's
//! commands find what the stack holds by what CloudFormation made, not by the names
//! `ripple dev` would give it.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::ProvideErrorMetadata as _;
use serde::Serialize;

use super::{ProvisionError, aws_error, unexpected};

/// A stack as CloudFormation describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CfnStack {
    /// The stack's name.
    pub name: String,
    /// Its ARN (`arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID`).
    pub stack_id: String,
    /// `CREATE_COMPLETE`, `UPDATE_IN_PROGRESS`, …
    pub status: String,
    /// The values its parameters were deployed with.
    pub parameters: BTreeMap<String, String>,
    /// Its outputs by key.
    pub outputs: BTreeMap<String, String>,
    /// Its resources by logical id.
    pub resources: BTreeMap<String, CfnResource>,
}

/// One resource of a deployed stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CfnResource {
    /// `AWS::SQS::Queue`, …
    pub resource_type: String,
    /// What CloudFormation made: a table's name, a queue's URL, a topic's or subscription's
    /// ARN, a function's name.
    pub physical_id: String,
}

impl CfnStack {
    /// The physical id of `logical_id`, if the stack holds it.
    pub fn physical_id(&self, logical_id: &str) -> Option<&str> {
        self.resources
            .get(logical_id)
            .map(|r| r.physical_id.as_str())
    }

    /// The account the stack lives in, from its ARN.
    pub fn account_id(&self) -> Option<&str> {
        arn_part(&self.stack_id, 4)
    }

    /// The region the stack lives in, from its ARN.
    pub fn region(&self) -> Option<&str> {
        arn_part(&self.stack_id, 3)
    }
}

fn arn_part(arn: &str, index: usize) -> Option<&str> {
    arn.split(':').nth(index).filter(|part| !part.is_empty())
}

/// Whether a stack in `status` holds its resources: `Err` says why not. A stack being updated
/// still holds them (its resources are being replaced one by one) and is usable; one being
/// created, rolled back after a failed creation, or deleted is not.
pub fn usable(status: &str) -> Result<(), &'static str> {
    match status {
        "CREATE_COMPLETE"
        | "UPDATE_COMPLETE"
        | "UPDATE_ROLLBACK_COMPLETE"
        | "IMPORT_COMPLETE"
        | "IMPORT_ROLLBACK_COMPLETE"
        | "UPDATE_IN_PROGRESS"
        | "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        | "UPDATE_ROLLBACK_IN_PROGRESS"
        | "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
        | "IMPORT_IN_PROGRESS"
        | "IMPORT_ROLLBACK_IN_PROGRESS" => Ok(()),
        "CREATE_IN_PROGRESS" | "REVIEW_IN_PROGRESS" => {
            Err("is still being created: wait for CREATE_COMPLETE")
        }
        "CREATE_FAILED" | "ROLLBACK_IN_PROGRESS" | "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" => {
            Err("failed to create and holds nothing: delete it and deploy again")
        }
        "DELETE_IN_PROGRESS" | "DELETE_COMPLETE" | "DELETE_FAILED" => Err("is being deleted"),
        "UPDATE_FAILED" | "UPDATE_ROLLBACK_FAILED" => {
            Err("is stuck after a failed update: continue the rollback first")
        }
        _ => Err("is in a state ripple does not know"),
    }
}

/// The stack `name` as CloudFormation describes it, with every resource it holds; `None` when
/// CloudFormation has no such stack.
pub async fn describe(client: &Client, name: &str) -> Result<Option<CfnStack>, ProvisionError> {
    let described = match client.describe_stacks().stack_name(name).send().await {
        Ok(described) => described,
        Err(err)
            if err.as_service_error().is_some_and(|e| {
                e.code() == Some("ValidationError")
                    && e.message().is_some_and(|m| m.contains("does not exist"))
            }) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(aws_error("DescribeStacks", name)(err)),
    };
    let Some(stack) = described.stacks().first() else {
        return Ok(None);
    };
    let stack_id = stack
        .stack_id()
        .ok_or_else(|| unexpected(name, "DescribeStacks returned no StackId"))?
        .to_owned();
    let status = stack
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let parameters = stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value()?.to_owned(),
            ))
        })
        .collect();
    let outputs = stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect();
    Ok(Some(CfnStack {
        name: name.to_owned(),
        resources: resources(client, &stack_id).await?,
        stack_id,
        status,
        parameters,
        outputs,
    }))
}

/// Every resource of the stack that exists (not deleted, not failed to create), by logical id.
async fn resources(
    client: &Client,
    stack_id: &str,
) -> Result<BTreeMap<String, CfnResource>, ProvisionError> {
    let mut resources = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_stack_resources()
            .stack_name(stack_id)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(aws_error("ListStackResources", stack_id))?;
        for summary in page.stack_resource_summaries() {
            let status = summary.resource_status().map(|s| s.as_str());
            if matches!(status, Some("DELETE_COMPLETE" | "CREATE_FAILED")) {
                continue;
            }
            let (Some(logical_id), Some(physical_id)) = (
                summary.logical_resource_id(),
                summary.physical_resource_id(),
            ) else {
                continue;
            };
            resources.insert(
                logical_id.to_owned(),
                CfnResource {
                    resource_type: summary.resource_type().unwrap_or_default().to_owned(),
                    physical_id: physical_id.to_owned(),
                },
            );
        }
        match page.next_token {
            Some(token) => next = Some(token),
            None => return Ok(resources),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stacks::{
        DescribeStacksError, DescribeStacksOutput,
    };
    use aws_sdk_cloudformation::operation::list_stack_resources::ListStackResourcesOutput;
    use aws_sdk_cloudformation::types::{
        Output, Parameter, ResourceStatus, Stack, StackResourceSummary, StackStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::error::ErrorMetadata;

    const STACK_ID: &str = "arn:aws:cloudformation:eu-west-1:111122223333:stack/shop/6b1c2d30-0000-11ef-9a4e-0a1b2c3d4e5f";

    fn summary(
        logical: &str,
        kind: &str,
        physical: &str,
        status: ResourceStatus,
    ) -> StackResourceSummary {
        StackResourceSummary::builder()
            .logical_resource_id(logical)
            .resource_type(kind)
            .physical_resource_id(physical)
            .resource_status(status)
            .last_updated_timestamp(aws_smithy_types::DateTime::from_secs(0))
            .build()
    }

    #[tokio::test]
    async fn a_deployed_stack_is_read_with_its_parameters_outputs_and_every_page_of_resources() {
        let stacks = mock!(Client::describe_stacks)
            .match_requests(|r| r.stack_name() == Some("shop"))
            .then_output(|| {
                DescribeStacksOutput::builder()
                    .stacks(
                        Stack::builder()
                            .stack_name("shop")
                            .stack_id(STACK_ID)
                            .stack_status(StackStatus::UpdateComplete)
                            .creation_time(aws_smithy_types::DateTime::from_secs(0))
                            .parameters(
                                Parameter::builder()
                                    .parameter_key("OrderDeadlineSeconds")
                                    .parameter_value("600")
                                    .build(),
                            )
                            .outputs(
                                Output::builder()
                                    .output_key("ApiUrl")
                                    .output_value(
                                        "https://abc.execute-api.eu-west-1.amazonaws.com/",
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let first = mock!(Client::list_stack_resources)
            .match_requests(|r| r.stack_name() == Some(STACK_ID) && r.next_token().is_none())
            .then_output(|| {
                ListStackResourcesOutput::builder()
                    .stack_resource_summaries(summary(
                        "EventsTable",
                        "AWS::DynamoDB::Table",
                        "shop-events",
                        ResourceStatus::CreateComplete,
                    ))
                    .stack_resource_summaries(summary(
                        "OldQueue",
                        "AWS::SQS::Queue",
                        "https://sqs.eu-west-1.amazonaws.com/111122223333/shop-old",
                        ResourceStatus::DeleteComplete,
                    ))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::list_stack_resources)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(|| {
                ListStackResourcesOutput::builder()
                    .stack_resource_summaries(summary(
                        "OrdersApiFunction",
                        "AWS::Lambda::Function",
                        "shop-OrdersApiFunction-Xk3J9aQ2",
                        ResourceStatus::UpdateComplete,
                    ))
                    .build()
            });
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&stacks, &first, &second]
        );

        let stack = describe(&client, "shop").await.unwrap().unwrap();

        assert_eq!(stack.status, "UPDATE_COMPLETE");
        assert_eq!(stack.account_id(), Some("111122223333"));
        assert_eq!(stack.region(), Some("eu-west-1"));
        assert_eq!(stack.parameters["OrderDeadlineSeconds"], "600");
        assert_eq!(
            stack.outputs["ApiUrl"],
            "https://abc.execute-api.eu-west-1.amazonaws.com/"
        );
        assert_eq!(stack.physical_id("EventsTable"), Some("shop-events"));
        assert_eq!(
            stack.physical_id("OrdersApiFunction"),
            Some("shop-OrdersApiFunction-Xk3J9aQ2")
        );
        assert_eq!(
            stack.physical_id("OldQueue"),
            None,
            "a deleted resource is not held"
        );
        assert_eq!(second.num_calls(), 1, "the second page was read");
    }

    #[tokio::test]
    async fn a_stack_cloudformation_does_not_have_is_none_and_any_other_error_is_one() {
        let missing = mock!(Client::describe_stacks)
            .match_requests(|r| r.stack_name() == Some("absent"))
            .then_error(|| {
                DescribeStacksError::generic(
                    ErrorMetadata::builder()
                        .code("ValidationError")
                        .message("Stack with id absent does not exist")
                        .build(),
                )
            });
        let denied = mock!(Client::describe_stacks)
            .match_requests(|r| r.stack_name() == Some("secret"))
            .then_error(|| {
                DescribeStacksError::generic(
                    ErrorMetadata::builder()
                        .code("AccessDenied")
                        .message("not authorized to perform: cloudformation:DescribeStacks")
                        .build(),
                )
            });
        let client = mock_client!(
            aws_sdk_cloudformation,
            RuleMode::MatchAny,
            [&missing, &denied]
        );

        assert_eq!(describe(&client, "absent").await.unwrap(), None);
        let err = describe(&client, "secret").await.unwrap_err();
        assert!(
            matches!(err, ProvisionError::Aws { operation: "DescribeStacks", ref resource, .. } if resource == "secret"),
            "{err:?}"
        );
    }

    #[test]
    fn only_a_stack_that_holds_its_resources_is_usable() {
        for ok in [
            "CREATE_COMPLETE",
            "UPDATE_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "UPDATE_IN_PROGRESS",
        ] {
            assert_eq!(usable(ok), Ok(()), "{ok}");
        }
        for (status, says) in [
            ("CREATE_IN_PROGRESS", "still being created"),
            ("ROLLBACK_COMPLETE", "failed to create"),
            ("DELETE_IN_PROGRESS", "being deleted"),
            ("UPDATE_ROLLBACK_FAILED", "continue the rollback"),
            ("SOMETHING_NEW", "does not know"),
        ] {
            assert!(usable(status).unwrap_err().contains(says), "{status}");
        }
    }
}
