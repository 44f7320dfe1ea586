//! How an intrinsic function is written: the short YAML tag (`!GetAtt X.Arn`) or the long form
//! (`{"Fn::GetAtt": [X, Arn]}`), and which resource a reference points at.

use serde_norway::Value as Yaml;

use super::REF;

/// An intrinsic function found in the template.
pub(super) enum Intrinsic<'a> {
    /// The function's long name (`Fn::GetAtt`, `Ref`) and its argument.
    Call(String, &'a Yaml),
}

/// The intrinsic function `value` is, if it is one.
pub(super) fn intrinsic(value: &Yaml) -> Option<Intrinsic<'_>> {
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let short = tag.trim_start_matches('!');
            let name = match short {
                "Ref" | "Condition" => short.to_owned(),
                other => format!("Fn::{other}"),
            };
            Some(Intrinsic::Call(name, &tagged.value))
        }
        Yaml::Mapping(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key.starts_with("Fn::")).then(|| Intrinsic::Call(key.to_owned(), arg))
        }
        _ => None,
    }
}

/// The resource (and attribute, [`REF`] for `!Ref`) an intrinsic points at: `!Ref X`,
/// `!GetAtt X.Arn`, `Fn::GetAtt: [X, Arn]`, or a `!Sub "${X.Arn}"` made of that one reference.
pub fn target_of(value: &Yaml) -> Option<(String, String)> {
    let Intrinsic::Call(name, arg) = intrinsic(value)?;
    match name.as_str() {
        "Ref" => Some((arg.as_str()?.to_owned(), REF.to_owned())),
        "Fn::GetAtt" => get_att_parts(arg),
        "Fn::Sub" => {
            let text = arg.as_str()?;
            let inner = text.strip_prefix("${")?.strip_suffix('}')?;
            if inner.contains(['$', '{', '}']) {
                return None;
            }
            match inner.split_once('.') {
                Some((id, attr)) => Some((id.to_owned(), attr.to_owned())),
                None => Some((inner.to_owned(), REF.to_owned())),
            }
        }
        _ => None,
    }
}

/// `X.Arn` or `[X, Arn]`.
pub(super) fn get_att_parts(arg: &Yaml) -> Option<(String, String)> {
    match arg {
        Yaml::String(s) => {
            let (id, attr) = s.split_once('.')?;
            Some((id.to_owned(), attr.to_owned()))
        }
        Yaml::Sequence(parts) if parts.len() == 2 => {
            Some((parts[0].as_str()?.to_owned(), parts[1].as_str()?.to_owned()))
        }
        _ => None,
    }
}
