//! Routing as API Gateway HTTP APIs route: the most specific route wins (literal segments over
//! `{param}` over `{proxy+}`, an exact method over `ANY`, `$default` last).

use std::collections::BTreeMap;

use crate::template::{Authorization, HttpRoute};

/// A route's path, split into what each segment must be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// A route the server can match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// Upper-case method or `ANY`.
    pub method: String,
    /// The route key (`POST /orders`, `$default`).
    pub route_key: String,
    /// What a request must carry to be let through.
    pub authorization: Authorization,
    segments: Vec<Segment>,
    default: bool,
}

impl RoutePattern {
    /// The pattern of a template route.
    pub fn new(route: &HttpRoute) -> Self {
        let default = route.path == "$default";
        let segments = if default {
            Vec::new()
        } else {
            route
                .path
                .trim_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => match name.strip_suffix('+') {
                            Some(greedy) => Segment::Greedy(greedy.to_owned()),
                            None => Segment::Param(name.to_owned()),
                        },
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect()
        };
        RoutePattern {
            method: route.method.to_ascii_uppercase(),
            route_key: route.route_key(),
            authorization: route.authorization.clone(),
            segments,
            default,
        }
    }

    /// The path parameters if `method` and `path` (raw, percent-encoded) match.
    pub fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if self.method != "ANY" && !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        if self.default {
            return Some(BTreeMap::new());
        }
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut params = BTreeMap::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(literal) => {
                    if parts.get(i).map(|p| percent_decode(p)) != Some(literal.clone()) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    params.insert(name.clone(), percent_decode(parts.get(i)?));
                }
                Segment::Greedy(name) => {
                    let rest = parts.get(i..).filter(|r| !r.is_empty())?;
                    params.insert(name.clone(), percent_decode(&rest.join("/")));
                    return Some(params);
                }
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }

    /// Higher is more specific.
    fn specificity(&self) -> (bool, usize, usize, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let bounded = self
            .segments
            .iter()
            .filter(|s| !matches!(s, Segment::Greedy(_)))
            .count();
        (!self.default, literals, bounded, self.method != "ANY")
    }
}

/// The most specific route matching a request: its index and path parameters.
pub fn find_route(
    patterns: &[RoutePattern],
    method: &str,
    path: &str,
) -> Option<(usize, BTreeMap<String, String>)> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.matches(method, path).map(|params| (i, params)))
        .max_by_key(|(i, _)| patterns[*i].specificity())
}

/// `text` with its `%XX` escapes decoded (invalid UTF-8 replaced).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> RoutePattern {
        RoutePattern::new(&HttpRoute {
            name: "r".into(),
            method: method.into(),
            path: path.into(),
            authorization: Authorization::None,
        })
    }

    fn routes() -> Vec<RoutePattern> {
        vec![
            route("POST", "/orders"),
            route("POST", "/orders/{id}/cancel"),
            route("GET", "/orders/{id}"),
            route("GET", "/orders/{id}/events"),
            route("GET", "/orders/latest"),
            route("ANY", "/files/{path+}"),
        ]
    }

    #[test]
    fn routes_match_method_path_and_parameters() {
        let routes = routes();
        let found = |m: &str, p: &str| {
            find_route(&routes, m, p).map(|(i, params)| (routes[i].route_key.clone(), params))
        };
        assert_eq!(found("POST", "/orders").unwrap().0, "POST /orders");
        let (key, params) = found("GET", "/orders/o-1/events").unwrap();
        assert_eq!(key, "GET /orders/{id}/events");
        assert_eq!(params["id"], "o-1");
        assert_eq!(found("GET", "/orders/a%20b").unwrap().1["id"], "a b");
        assert_eq!(
            found("GET", "/orders/latest").unwrap().0,
            "GET /orders/latest",
            "literal beats a parameter"
        );
        assert_eq!(found("DELETE", "/files/a/b/c").unwrap().1["path"], "a/b/c");
        assert!(found("GET", "/orders").is_none());
        assert!(found("PUT", "/orders/1").is_none());
        assert!(found("GET", "/orders/1/events/x").is_none());
        assert!(found("GET", "/files").is_none());
    }

    #[test]
    fn the_default_route_catches_the_rest() {
        let mut routes = routes();
        routes.push(route("ANY", "$default"));
        let (i, _) = find_route(&routes, "GET", "/nowhere").unwrap();
        assert_eq!(routes[i].route_key, "$default");
        let (i, _) = find_route(&routes, "POST", "/orders").unwrap();
        assert_eq!(routes[i].route_key, "POST /orders");
    }
}
