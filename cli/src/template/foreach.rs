//! `Fn::ForEach` of the `AWS::LanguageExtensions` transform, expanded the way CloudFormation
//! expands it, so that the runner provisions exactly what a deployment would get.
//!
//! `"Fn::ForEach::Loop": [Identifier, [A, B], {"${Identifier}Queue": body}]` becomes one entry
//! per item of the collection. In the copy for item `A`, every `${Identifier}` in a key or a
//! string becomes `A`, every `&{Identifier}` becomes `A` without its non-alphanumeric characters,
//! and `{"Ref": "Identifier"}` becomes the string `A`. Loops nest; two copies with the same key
//! are an error. A `Fn::Sub` left with no `${...}` after substitution is replaced by its text,
//! as the transform does, so that `!GetAtt [!Sub "${Identifier}Queue", Arn]` names a resource.
//!
//! The collection must be a literal list here: one that comes from a parameter would need the
//! parameter's value before the template is parsed.

use serde_norway::Value as Yaml;
use serde_norway::value::TaggedValue;

use super::error::{TemplateError, invalid};

/// The key prefix of a loop.
const FOR_EACH: &str = "Fn::ForEach::";
/// The transform that gives templates `Fn::ForEach`.
pub const LANGUAGE_EXTENSIONS: &str = "AWS::LanguageExtensions";
/// CloudFormation's limit on nested loops.
const MAX_NESTING: usize = 5;

/// Expands every loop in `value` (a section of the template at `at`); `loops` counts them.
pub(super) fn expand(value: &Yaml, at: &str, loops: &mut usize) -> Result<Yaml, TemplateError> {
    expand_within(value, at, loops, 0)
}

fn expand_within(
    value: &Yaml,
    at: &str,
    loops: &mut usize,
    nesting: usize,
) -> Result<Yaml, TemplateError> {
    match value {
        Yaml::Mapping(map) => {
            let mut out = serde_norway::Mapping::new();
            for (key, item) in map {
                let name = key.as_str().unwrap_or_default();
                let child = format!("{at}.{name}");
                if name.starts_with(FOR_EACH) {
                    *loops += 1;
                    for (key, item) in expand_loop(item, &child, loops, nesting + 1)? {
                        insert_unique(&mut out, key, item, &child)?;
                    }
                } else {
                    insert_unique(
                        &mut out,
                        key.clone(),
                        expand_within(item, &child, loops, nesting)?,
                        at,
                    )?;
                }
            }
            Ok(Yaml::Mapping(out))
        }
        Yaml::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| expand_within(item, &format!("{at}[{i}]"), loops, nesting))
            .collect::<Result<Vec<_>, _>>()
            .map(Yaml::Sequence),
        Yaml::Tagged(tagged) => Ok(Yaml::Tagged(Box::new(TaggedValue {
            tag: tagged.tag.clone(),
            value: expand_within(&tagged.value, at, loops, nesting)?,
        }))),
        scalar => Ok(scalar.clone()),
    }
}

/// The entries one loop stands for, its nested loops expanded.
fn expand_loop(
    declaration: &Yaml,
    at: &str,
    loops: &mut usize,
    nesting: usize,
) -> Result<Vec<(Yaml, Yaml)>, TemplateError> {
    if nesting > MAX_NESTING {
        return Err(invalid(
            at,
            format!("Fn::ForEach nests deeper than CloudFormation's {MAX_NESTING} levels"),
        ));
    }
    let layout = "Fn::ForEach takes [Identifier, [items], {OutputKey: OutputValue}]";
    let Some([identifier, collection, body]) = declaration.as_sequence().map(Vec::as_slice) else {
        return Err(invalid(at, layout));
    };
    let (Some(identifier), Some(body)) = (identifier.as_str(), body.as_mapping()) else {
        return Err(invalid(at, layout));
    };
    let mut entries = Vec::new();
    for item in items(collection, at)? {
        for (key, value) in body {
            let key = substitute(key, identifier, &item);
            let value = substitute(value, identifier, &item);
            let child = format!("{at}.{}", key.as_str().unwrap_or_default());
            if !key.as_str().is_some_and(|k| k.starts_with(FOR_EACH)) {
                entries.push((key, expand_within(&value, &child, loops, nesting)?));
                continue;
            }
            *loops += 1;
            entries.extend(expand_loop(&value, &child, loops, nesting + 1)?);
        }
    }
    Ok(entries)
}

/// The collection's items as text: a literal list of scalars.
fn items(collection: &Yaml, at: &str) -> Result<Vec<String>, TemplateError> {
    let Some(items) = collection.as_sequence() else {
        return Err(invalid(
            at,
            "the local runner expands Fn::ForEach over a literal list only",
        ));
    };
    items
        .iter()
        .map(|item| match item {
            Yaml::String(s) => Ok(s.clone()),
            Yaml::Number(n) => Ok(n.to_string()),
            Yaml::Bool(b) => Ok(b.to_string()),
            _ => Err(invalid(at, "Fn::ForEach collection items must be scalars")),
        })
        .collect()
}

fn insert_unique(
    map: &mut serde_norway::Mapping,
    key: Yaml,
    value: Yaml,
    at: &str,
) -> Result<(), TemplateError> {
    if map.contains_key(&key) {
        return Err(invalid(
            at,
            format!(
                "Fn::ForEach produces {} twice",
                key.as_str().unwrap_or("a key")
            ),
        ));
    }
    map.insert(key, value);
    Ok(())
}

/// `value` with `identifier` replaced by `item` (see the module documentation).
fn substitute(value: &Yaml, identifier: &str, item: &str) -> Yaml {
    match value {
        Yaml::String(text) => Yaml::String(substitute_text(text, identifier, item)),
        Yaml::Sequence(items) => Yaml::Sequence(
            items
                .iter()
                .map(|v| substitute(v, identifier, item))
                .collect(),
        ),
        Yaml::Mapping(map) => {
            if map.len() == 1 && map.get("Ref").and_then(Yaml::as_str) == Some(identifier) {
                return Yaml::String(item.to_owned());
            }
            let mut out = serde_norway::Mapping::new();
            for (key, v) in map {
                out.insert(
                    substitute(key, identifier, item),
                    substitute(v, identifier, item),
                );
            }
            without_variables(Yaml::Mapping(out))
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            if tag == "Ref" && tagged.value.as_str() == Some(identifier) {
                return Yaml::String(item.to_owned());
            }
            without_variables(Yaml::Tagged(Box::new(TaggedValue {
                tag: tagged.tag.clone(),
                value: substitute(&tagged.value, identifier, item),
            })))
        }
        scalar => scalar.clone(),
    }
}

fn substitute_text(text: &str, identifier: &str, item: &str) -> String {
    let alphanumeric: String = item.chars().filter(char::is_ascii_alphanumeric).collect();
    text.replace(&format!("${{{identifier}}}"), item)
        .replace(&format!("&{{{identifier}}}"), &alphanumeric)
}

/// A `Fn::Sub` of a string with nothing left to substitute, as that string.
fn without_variables(value: Yaml) -> Yaml {
    let text = match &value {
        Yaml::Tagged(tagged) if tagged.tag.to_string().trim_start_matches('!') == "Sub" => {
            tagged.value.as_str()
        }
        Yaml::Mapping(map) if map.len() == 1 => map.get("Fn::Sub").and_then(Yaml::as_str),
        _ => None,
    };
    match text {
        // `${!Literal}` is a variable too here: the resolver turns it into `${Literal}`.
        Some(text) if !text.contains("${") => Yaml::String(text.to_owned()),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Yaml {
        serde_norway::from_str(text).unwrap()
    }

    fn expanded(text: &str) -> Result<Yaml, TemplateError> {
        expand(&yaml(text), "Resources", &mut 0)
    }

    #[test]
    fn a_loop_stands_for_one_entry_per_item_with_the_identifier_replaced() {
        let out = expanded(
            r#"
Fn::ForEach::Queues:
  - Name
  - [Work, Order-Saga]
  - "${Name}Queue":
      Type: AWS::SQS::Queue
      Properties:
        QueueName: !Sub "${AWS::StackName}-${Name}"
        Tag: !Ref Name
        Plain: "queue ${Name}"
        Dlq: !GetAtt [!Sub "&{Name}Dlq", Arn]
        Long: {"Fn::Sub": "${Name}"}
        Literal: !Sub "${!Name}"
"#,
        )
        .unwrap();
        let expected = yaml(
            r#"
WorkQueue:
  Type: AWS::SQS::Queue
  Properties:
    QueueName: !Sub "${AWS::StackName}-Work"
    Tag: Work
    Plain: queue Work
    Dlq: !GetAtt [WorkDlq, Arn]
    Long: Work
    Literal: !Sub "${!Name}"
Order-SagaQueue:
  Type: AWS::SQS::Queue
  Properties:
    QueueName: !Sub "${AWS::StackName}-Order-Saga"
    Tag: Order-Saga
    Plain: queue Order-Saga
    Dlq: !GetAtt [OrderSagaDlq, Arn]
    Long: Order-Saga
    Literal: !Sub "${!Name}"
"#,
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn loops_nest_and_count() {
        let mut loops = 0;
        let out = expand(
            &yaml(
                r#"
Fn::ForEach::Outer:
  - A
  - [x, y]
  - Fn::ForEach::Inner:
      - B
      - ["1", 2]
      - "${A}${B}": {Ref: A}
Kept: 1
"#,
            ),
            "Outputs",
            &mut loops,
        )
        .unwrap();
        assert_eq!(out, yaml("{x1: x, x2: x, y1: y, y2: y, Kept: 1}"));
        assert_eq!(loops, 3, "the outer loop and the inner one per outer item");
    }

    #[test]
    fn loops_inside_properties_are_expanded() {
        let out = expanded(
            "T:\n  Properties:\n    Fn::ForEach::P:\n      - K\n      - [a, b]\n      - \"${K}\": on\n",
        )
        .unwrap();
        assert_eq!(out, yaml("T: {Properties: {a: on, b: on}}"));
    }

    #[test]
    fn two_entries_with_the_same_key_are_an_error() {
        let err =
            expanded("Fn::ForEach::Q:\n  - N\n  - [a, a]\n  - \"${N}Queue\": {}\n").unwrap_err();
        assert!(err.to_string().contains("aQueue twice"), "{err}");
        let err = expanded("aQueue: {}\nFn::ForEach::Q:\n  - N\n  - [a]\n  - \"${N}Queue\": {}\n")
            .unwrap_err();
        assert!(err.to_string().contains("aQueue twice"), "{err}");
    }

    #[test]
    fn a_collection_that_is_not_a_literal_list_is_a_clear_error() {
        let err = expanded("Fn::ForEach::Q:\n  - N\n  - !Ref Names\n  - \"${N}Queue\": {}\n")
            .unwrap_err();
        assert!(err.to_string().contains("literal list"), "{err}");
        let err = expanded("Fn::ForEach::Q: [N, [a]]\n").unwrap_err();
        assert!(err.to_string().contains("takes [Identifier"), "{err}");
    }

    #[test]
    fn nesting_deeper_than_cloudformation_allows_is_refused() {
        let nested = |levels: usize| {
            let mut text = String::from("{leaf: 1}");
            for level in 0..levels {
                text = format!(
                    "{{\"Fn::ForEach::L{level}\": [I{level}, [a], {{\"${{I{level}}}x\": {text}}}]}}"
                );
            }
            expanded(&text)
        };
        assert!(nested(MAX_NESTING).is_ok());
        let err = nested(MAX_NESTING + 1).unwrap_err();
        assert!(err.to_string().contains("nests deeper"), "{err}");
    }
}
