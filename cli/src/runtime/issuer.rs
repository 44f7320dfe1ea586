//! A local OpenID Connect issuer, so that `ripple dev` runs with real identities and no account.
//!
//! At start it generates an RSA key (API Gateway's JWT authorizers take only RSA) and serves, on
//! 127.0.0.1, what an identity provider publishes: `/.well-known/openid-configuration` and the
//! key set at `/.well-known/jwks.json`. The local HTTP API discovers the keys there and verifies
//! tokens exactly as API Gateway would (`http::auth`).
//!
//! Tokens have the shape of Cognito access tokens: `sub` (the customer), `client_id` (the local
//! app client, [`LOCAL_AUDIENCE`]), `scope`, `token_use`, `iss`, `iat`, `exp`, `jti`. The runner
//! mints them for its sample customers; `POST /token` (form fields `sub` and `scope`) mints one
//! for whoever asks, which is what a developer's curl needs and why the issuer listens on the
//! loopback interface only. It is a development tool: nothing here is an identity provider.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::RuntimeError;
use super::http::percent_decode;

/// The audience of local tokens: the `client_id` of the local app client.
pub const LOCAL_AUDIENCE: &str = "ripple-local";
/// How long a minted token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The scopes a token gets when none are asked for: everything a customer may do.
pub const CUSTOMER_SCOPES: [&str; 2] = [
    orders_api::identity::scopes::WRITE,
    orders_api::identity::scopes::READ,
];
/// The largest `POST /token` body read.
const MAX_FORM_BYTES: usize = 4096;

/// Why the issuer could not start or sign.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The key could not be generated or encoded.
    #[error("cannot make the issuer's signing key: {0}")]
    Key(String),
    /// A token could not be signed.
    #[error("cannot sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// The local issuer: its URL, its signing key and the key set it publishes.
pub struct LocalIssuer {
    url: String,
    kid: String,
    key: EncodingKey,
    jwks: JwkSet,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("url", &self.url)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl LocalIssuer {
    /// An issuer at `url` with a fresh RSA key (CPU-bound: a fraction of a second).
    pub fn generate(url: impl Into<String>) -> Result<Self, IssuerError> {
        use rsa::Generate as _;
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let private =
            rsa::PrivateKey::try_generate().map_err(|e| IssuerError::Key(e.to_string()))?;
        let der = private
            .to_pkcs1_der()
            .map_err(|e| IssuerError::Key(e.to_string()))?;
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        let kid = uuid::Uuid::new_v4().to_string();
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)
            .map_err(|e| IssuerError::Key(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(LocalIssuer {
            url: url.into(),
            kid,
            key,
            jwks: JwkSet { keys: vec![jwk] },
        })
    }

    /// Binds 127.0.0.1:`port` (0: any free port), generates the key for the URL it got, and
    /// serves until `stop` is cancelled.
    pub async fn start(
        port: u16,
        stop: CancellationToken,
    ) -> Result<(Arc<Self>, JoinHandle<()>), RuntimeError> {
        let (listener, bound) = super::listen::bind(port).await?;
        let url = format!("http://{bound}");
        let issuer = tokio::task::spawn_blocking(move || LocalIssuer::generate(url))
            .await
            .map_err(|e| RuntimeError::Issuer(IssuerError::Key(e.to_string())))?
            .map_err(RuntimeError::Issuer)?;
        let issuer = Arc::new(issuer);
        let serving = issuer.clone();
        let task = super::listen::serve(listener, stop, move |request, _| {
            let issuer = serving.clone();
            async move { answer(&issuer, request).await }
        });
        Ok((issuer, task))
    }

    /// The issuer URL: the `iss` of its tokens.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key set it publishes.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The discovery document, as an OpenID provider publishes it.
    pub fn discovery(&self) -> Value {
        json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.url),
            "token_endpoint": format!("{}/token", self.url),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": CUSTOMER_SCOPES,
        })
    }

    /// The claims of an access token for `subject` with `scopes`, valid for `lifetime` from
    /// `now` (tests change them before [`sign`](Self::sign)ing).
    pub fn claims(
        &self,
        subject: &str,
        scopes: &[&str],
        now: SystemTime,
        lifetime: Duration,
    ) -> Value {
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        json!({
            "iss": self.url,
            "sub": subject,
            "client_id": LOCAL_AUDIENCE,
            "token_use": "access",
            "scope": scopes.join(" "),
            "username": subject,
            "iat": iat,
            "exp": iat + lifetime.as_secs(),
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// `claims`, signed RS256 under this issuer's key id.
    pub fn sign(&self, claims: &Value) -> Result<String, IssuerError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(IssuerError::Sign)
    }

    /// An access token for `subject` with `scopes`, valid for [`TOKEN_LIFETIME`].
    pub fn token(&self, subject: &str, scopes: &[&str]) -> Result<String, IssuerError> {
        self.sign(&self.claims(subject, scopes, SystemTime::now(), TOKEN_LIFETIME))
    }
}

async fn answer(issuer: &LocalIssuer, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/.well-known/openid-configuration") => {
            respond(StatusCode::OK, &issuer.discovery())
        }
        (&Method::GET, "/.well-known/jwks.json") => respond(StatusCode::OK, &json!(issuer.jwks())),
        (&Method::POST, "/token") => {
            let form = match Limited::new(request.into_body(), MAX_FORM_BYTES)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "form too large"),
            };
            mint(issuer, &String::from_utf8_lossy(&form))
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// `POST /token` with the form fields `sub` (required) and `scope` (space-separated; the
/// customer scopes when absent).
fn mint(issuer: &LocalIssuer, form: &str) -> Response<Full<Bytes>> {
    let field = |name: &str| {
        form.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| percent_decode(&value.replace('+', " ")))
    };
    let Some(subject) = field("sub").filter(|s| domain::is_valid_subject(s)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the customer as the form field sub (visible ASCII)",
        );
    };
    let scope = field("scope").unwrap_or_else(|| CUSTOMER_SCOPES.join(" "));
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    match issuer.token(&subject, &scopes) {
        Ok(token) => respond(
            StatusCode::OK,
            &json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME.as_secs(),
                "scope": scopes.join(" "),
            }),
        ),
        Err(err) => {
            tracing::error!(error = %err, "cannot mint a token");
            error(StatusCode::INTERNAL_SERVER_ERROR, "cannot sign a token")
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(status, &json!({"error": message}))
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
