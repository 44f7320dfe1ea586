//! Token checks as API Gateway's JWT authorizer makes them, for the routes the template protects.
//!
//! The keys come from the issuer's discovery document and key set, fetched over HTTP once at
//! start. A request passes when its `Authorization` header (the token, with or without `Bearer `)
//! is a JWT whose header names one of those keys with an RSA algorithm, whose signature checks,
//! whose `iss` is the issuer, whose `aud` (or, without one, `client_id`) is one of the audiences,
//! whose `exp` is after now and `nbf`/`iat` (when present) not after now, and, when the route
//! names scopes, whose `scope` (or `scp`) holds at least one of them. A failed check is `401`,
//! a missing scope `403`, with API Gateway's bodies. What passes is handed to the function as
//! API Gateway hands it: every claim as a string in `requestContext.authorizer.jwt.claims`, the
//! token's scopes in `requestContext.authorizer.jwt.scopes`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

/// A JWT authorizer: the issuer it trusts, the audiences it accepts and the issuer's keys.
#[derive(Debug, Clone)]
pub struct JwtAuthorizer {
    issuer: String,
    audiences: Vec<String>,
    keys: JwkSet,
}

/// Why a request is not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that fails a check: 401.
    Unauthorized(String),
    /// A valid token without any of the route's scopes: 403.
    Forbidden(String),
}

/// What the authorizer verified, in the form API Gateway passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Every claim, as a string (numbers as digits, lists as `[a b]`).
    pub claims: BTreeMap<String, String>,
    /// The token's scopes.
    pub scopes: Vec<String>,
}

impl Verified {
    /// `requestContext.authorizer` of a payload-format 2.0 event.
    pub fn authorizer_context(&self) -> Value {
        let scopes = if self.scopes.is_empty() {
            Value::Null
        } else {
            json!(self.scopes)
        };
        json!({"jwt": {"claims": self.claims, "scopes": scopes}})
    }
}

/// Why the issuer's keys could not be fetched.
#[derive(Debug, thiserror::Error)]
#[error("cannot discover the keys of {issuer}: {reason}")]
pub struct DiscoveryError {
    /// The issuer.
    pub issuer: String,
    /// What went wrong.
    pub reason: String,
}

impl JwtAuthorizer {
    /// An authorizer trusting `issuer`'s `keys` for tokens meant for one of `audiences`.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>, keys: JwkSet) -> Self {
        JwtAuthorizer {
            issuer: issuer.into(),
            audiences,
            keys,
        }
    }

    /// An authorizer for `issuer`, its keys read from the `jwks_uri` of its discovery document.
    pub async fn discover(issuer: &str, audiences: Vec<String>) -> Result<Self, DiscoveryError> {
        let failed = |reason: String| DiscoveryError {
            issuer: issuer.to_owned(),
            reason,
        };
        let discovery = get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await
            .map_err(failed)?;
        if discovery["issuer"] != issuer {
            return Err(failed(format!(
                "its discovery document names the issuer {}",
                discovery["issuer"]
            )));
        }
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or_else(|| failed("its discovery document has no jwks_uri".into()))?;
        let keys: JwkSet = serde_json::from_value(get_json(jwks_uri).await.map_err(failed)?)
            .map_err(|e| failed(format!("its key set is not a JWKS: {e}")))?;
        Ok(JwtAuthorizer::new(issuer, audiences, keys))
    }

    /// Checks the `Authorization` header of a request to a route that needs one of `scopes`.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        scopes: &[String],
    ) -> Result<Verified, Denied> {
        let unauthorized = |reason: &str| Denied::Unauthorized(reason.to_owned());
        let token = authorization
            .map(|value| value.trim())
            .map(|value| value.strip_prefix("Bearer ").unwrap_or(value).trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| unauthorized("no token"))?;
        let claims = self.checked_claims(token)?;
        let audience_ok = match claims.get("aud") {
            Some(aud) => strings(aud).iter().any(|a| self.audiences.contains(a)),
            None => claims
                .get("client_id")
                .and_then(Value::as_str)
                .is_some_and(|id| self.audiences.iter().any(|a| a == id)),
        };
        if !audience_ok {
            return Err(unauthorized(
                "the token is not meant for this API (aud / client_id)",
            ));
        }
        let granted: Vec<String> = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(scope)), _) => {
                scope.split_whitespace().map(str::to_owned).collect()
            }
            (_, Some(scp)) => strings(scp)
                .iter()
                .flat_map(|s| s.split_whitespace())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        if !scopes.is_empty() && !scopes.iter().any(|s| granted.contains(s)) {
            return Err(Denied::Forbidden(format!(
                "the token grants none of {}",
                scopes.join(", ")
            )));
        }
        Ok(Verified {
            claims: claims
                .iter()
                .map(|(k, v)| (k.clone(), claim_text(v)))
                .collect(),
            scopes: granted,
        })
    }

    /// The token's claims once its key, algorithm, signature, issuer and times check out.
    fn checked_claims(&self, token: &str) -> Result<Map<String, Value>, Denied> {
        let unauthorized = |reason: String| Denied::Unauthorized(reason);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthorized(format!("not a JWT: {e}")))?;
        // API Gateway takes only RSA signatures.
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) {
            return Err(unauthorized(format!(
                "{:?} is not an RSA algorithm",
                header.alg
            )));
        }
        let jwk = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.find(kid))
            .ok_or_else(|| {
                unauthorized("the token's kid names none of the issuer's keys".into())
            })?;
        let key =
            DecodingKey::from_jwk(jwk).map_err(|e| unauthorized(format!("unusable key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false; // `aud` or `client_id`: checked by the caller
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| unauthorized(format!("{e}")))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if data
            .claims
            .get("iat")
            .and_then(Value::as_u64)
            .is_some_and(|iat| iat > now)
        {
            return Err(unauthorized("issued in the future".into()));
        }
        Ok(data.claims)
    }
}

/// A claim that is a string or a list of strings, as a list.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A claim as API Gateway renders it for the function.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(claim_text).collect();
            format!("[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

async fn get_json(url: &str) -> Result<Value, String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::issuer::{LOCAL_AUDIENCE, LocalIssuer, TOKEN_LIFETIME};
    use std::sync::OnceLock;
    use std::time::Duration;

    const WRITE: &str = orders_api::identity::scopes::WRITE;
    const READ: &str = orders_api::identity::scopes::READ;

    /// Two issuers, generated once for these tests: the trusted one and an impostor.
    fn issuers() -> &'static (LocalIssuer, LocalIssuer) {
        static ISSUERS: OnceLock<(LocalIssuer, LocalIssuer)> = OnceLock::new();
        ISSUERS.get_or_init(|| {
            (
                LocalIssuer::generate("http://127.0.0.1:1").unwrap(),
                LocalIssuer::generate("http://127.0.0.1:1").unwrap(),
            )
        })
    }

    fn authorizer() -> JwtAuthorizer {
        let (trusted, _) = issuers();
        JwtAuthorizer::new(
            trusted.url(),
            vec![LOCAL_AUDIENCE.into()],
            trusted.jwks().clone(),
        )
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn claims(scopes: &[&str]) -> Value {
        issuers()
            .0
            .claims("c-1", scopes, SystemTime::now(), TOKEN_LIFETIME)
    }

    fn signed(claims: &Value) -> String {
        bearer(&issuers().0.sign(claims).unwrap())
    }

    fn needs(scope: &str) -> Vec<String> {
        vec![scope.to_owned()]
    }

    #[test]
    fn a_valid_token_passes_with_its_claims_as_strings() {
        let verified = authorizer()
            .verify(Some(&signed(&claims(&[WRITE, READ]))), &needs(WRITE))
            .unwrap();
        assert_eq!(verified.claims["sub"], "c-1");
        assert_eq!(verified.claims["client_id"], LOCAL_AUDIENCE);
        assert!(verified.claims["exp"].parse::<u64>().is_ok());
        assert_eq!(verified.scopes, [WRITE, READ]);
        let context = verified.authorizer_context();
        assert_eq!(context["jwt"]["claims"]["sub"], "c-1");
        assert_eq!(context["jwt"]["scopes"], json!([WRITE, READ]));
        // The token alone, without "Bearer ", is accepted too.
        let bare = issuers().0.sign(&claims(&[READ])).unwrap();
        assert!(authorizer().verify(Some(&bare), &needs(READ)).is_ok());
    }

    #[test]
    fn no_token_is_401() {
        for header in [None, Some(""), Some("Bearer "), Some("Bearer not.a.jwt")] {
            assert!(
                matches!(
                    authorizer().verify(header, &needs(READ)),
                    Err(Denied::Unauthorized(_))
                ),
                "{header:?}"
            );
        }
    }

    #[test]
    fn an_expired_token_is_401() {
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        let expired = issuers()
            .0
            .claims("c-1", &[READ], two_hours_ago, TOKEN_LIFETIME);
        assert!(matches!(
            authorizer().verify(Some(&signed(&expired)), &needs(READ)),
            Err(Denied::Unauthorized(_))
        ));
        let mut not_yet = claims(&[READ]);
        not_yet["nbf"] = json!(u64::MAX / 2);
        assert!(
            authorizer()
                .verify(Some(&signed(&not_yet)), &needs(READ))
                .is_err()
        );
        let mut future_iat = claims(&[READ]);
        future_iat["iat"] = future_iat["exp"].clone();
        assert!(
            authorizer()
                .verify(Some(&signed(&future_iat)), &needs(READ))
                .is_err()
        );
    }

    #[test]
    fn a_token_for_another_audience_or_from_another_issuer_is_401() {
        let mut other_client = claims(&[READ]);
        other_client["client_id"] = json!("someone-elses-app");
        assert!(matches!(
            authorizer().verify(Some(&signed(&other_client)), &needs(READ)),
            Err(Denied::Unauthorized(_))
        ));
        // An `aud` takes precedence over `client_id`, and must match too.
        let mut wrong_aud = claims(&[READ]);
        wrong_aud["aud"] = json!(["another-api"]);
        assert!(
            authorizer()
                .verify(Some(&signed(&wrong_aud)), &needs(READ))
                .is_err()
        );
        let mut right_aud = claims(&[READ]);
        right_aud["aud"] = json!(LOCAL_AUDIENCE);
        right_aud["client_id"] = json!("whatever");
        assert!(
            authorizer()
                .verify(Some(&signed(&right_aud)), &needs(READ))
                .is_ok()
        );
        let mut other_issuer = claims(&[READ]);
        other_issuer["iss"] = json!("https://issuer.example");
        assert!(
            authorizer()
                .verify(Some(&signed(&other_issuer)), &needs(READ))
                .is_err()
        );
    }

    #[test]
    fn a_bad_signature_is_401() {
        let (_, impostor) = issuers();
        // The impostor signs trusted-looking claims with its own key (and its own kid)...
        let forged = bearer(&impostor.sign(&claims(&[READ])).unwrap());
        assert!(matches!(
            authorizer().verify(Some(&forged), &needs(READ)),
            Err(Denied::Unauthorized(_))
        ));
        // ...or under the trusted kid: the signature does not check.
        let genuine = issuers().0.sign(&claims(&[READ])).unwrap();
        let impostors = impostor.sign(&claims(&[WRITE, READ])).unwrap();
        let (head, _) = genuine.rsplit_once('.').unwrap();
        let (_, signature) = impostors.rsplit_once('.').unwrap();
        let spliced = bearer(&format!("{head}.{signature}"));
        assert!(authorizer().verify(Some(&spliced), &needs(READ)).is_err());
        // An unsigned token is no RSA token.
        let (_, payload_and_sig) = genuine.split_once('.').unwrap();
        let (payload, _) = payload_and_sig.split_once('.').unwrap();
        let none = bearer(&format!("eyJhbGciOiJub25lIn0.{payload}."));
        assert!(authorizer().verify(Some(&none), &needs(READ)).is_err());
    }

    #[test]
    fn a_token_without_the_routes_scope_is_403() {
        assert!(matches!(
            authorizer().verify(Some(&signed(&claims(&[READ]))), &needs(WRITE)),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            authorizer().verify(Some(&signed(&claims(&[]))), &needs(READ)),
            Err(Denied::Forbidden(_))
        ));
        // A route that names no scope takes any valid token.
        assert!(
            authorizer()
                .verify(Some(&signed(&claims(&[]))), &[])
                .is_ok()
        );
        // `scp` (a list) counts as well as `scope`.
        let mut scp = claims(&[]);
        scp.as_object_mut().unwrap().remove("scope");
        scp["scp"] = json!([WRITE]);
        assert!(
            authorizer()
                .verify(Some(&signed(&scp)), &needs(WRITE))
                .is_ok()
        );
    }

    #[test]
    fn claims_are_rendered_as_api_gateway_renders_them() {
        assert_eq!(claim_text(&json!("a")), "a");
        assert_eq!(claim_text(&json!(12)), "12");
        assert_eq!(claim_text(&json!(["admin", "users"])), "[admin users]");
        assert_eq!(claim_text(&json!(true)), "true");
    }
}
