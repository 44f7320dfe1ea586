//! What `!Ref` and `!GetAtt` return for each resource type the runner knows, predicted from the
//! resource's physical name, unless the provisioner recorded the real value.

use super::REF;
use super::document::Resource;
use super::error::{TemplateError, invalid};
use super::pseudo::api_id;
use super::resolver::Resolver;

impl Resolver<'_> {
    pub(super) fn get_att(
        &self,
        id: &str,
        attr: &str,
        at: &str,
        depth: u8,
    ) -> Result<String, TemplateError> {
        if let Some(value) = self.known.get(&(id.to_owned(), attr.to_owned())) {
            return Ok(value.clone());
        }
        let resource =
            self.template
                .resources
                .get(id)
                .ok_or_else(|| TemplateError::UnknownReference {
                    at: at.to_owned(),
                    name: id.to_owned(),
                })?;
        let p = &self.pseudo;
        let unknown = || TemplateError::UnknownAttribute {
            at: at.to_owned(),
            logical_id: id.to_owned(),
            resource_type: resource.resource_type.clone(),
            attribute: attr.to_owned(),
        };
        let later = || TemplateError::NotYetKnown {
            at: at.to_owned(),
            logical_id: id.to_owned(),
            attribute: attr.to_owned(),
        };
        let name = || self.physical_name(resource, depth + 1);
        let value = match (resource.resource_type.as_str(), attr) {
            ("AWS::DynamoDB::Table", REF) => name()?,
            ("AWS::DynamoDB::Table", "Arn") => format!(
                "arn:{}:dynamodb:{}:{}:table/{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            // The stream label is a creation timestamp only DynamoDB knows.
            ("AWS::DynamoDB::Table", "StreamArn") => return Err(later()),
            ("AWS::SNS::Topic", REF | "TopicArn") => format!(
                "arn:{}:sns:{}:{}:{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            ("AWS::SNS::Topic", "TopicName") => name()?,
            ("AWS::SQS::Queue", REF | "QueueUrl") => format!(
                "https://sqs.{}.{}/{}/{}",
                p.region,
                p.url_suffix,
                p.account_id,
                name()?
            ),
            ("AWS::SQS::Queue", "Arn") => format!(
                "arn:{}:sqs:{}:{}:{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            ("AWS::SQS::Queue", "QueueName") => name()?,
            ("AWS::Serverless::HttpApi" | "AWS::ApiGatewayV2::Api", REF | "ApiId") => {
                api_id(&p.stack_name, id)
            }
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", REF) => name()?,
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => format!(
                "arn:{}:lambda:{}:{}:function:{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            _ => return Err(unknown()),
        };
        Ok(value)
    }

    /// The physical name of a named resource type: its name property, or a generated
    /// `<stack>-<LogicalId>` (deterministic, where CloudFormation would add a random suffix).
    pub(super) fn physical_name(
        &self,
        resource: &Resource,
        depth: u8,
    ) -> Result<String, TemplateError> {
        let at = format!("Resources.{}.Properties", resource.logical_id);
        let props = &resource.properties;
        let (property, fifo_flag, limit) = match resource.resource_type.as_str() {
            "AWS::DynamoDB::Table" => ("TableName", None, 255),
            "AWS::SNS::Topic" => ("TopicName", Some("FifoTopic"), 256),
            "AWS::SQS::Queue" => ("QueueName", Some("FifoQueue"), 80),
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => ("FunctionName", None, 64),
            other => {
                return Err(invalid(&at, format!("{other} has no physical name")));
            }
        };
        if let Some(value) = props.get(property) {
            return self.string(value, &format!("{at}.{property}"), depth);
        }
        let fifo = match fifo_flag.and_then(|flag| props.get(flag)) {
            Some(flag) => self.flag(
                flag,
                &format!("{at}.{}", fifo_flag.unwrap_or_default()),
                depth,
            )?,
            None => false,
        };
        let suffix = if fifo { ".fifo" } else { "" };
        let mut base = format!("{}-{}", self.pseudo.stack_name, resource.logical_id);
        base.truncate(limit - suffix.len());
        Ok(base + suffix)
    }
}
