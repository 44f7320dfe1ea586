//! The local HTTP API checks tokens as API Gateway's JWT authorizer does, against the runner's own
//! issuer (discovered over HTTP), and passes the verified claims where API Gateway puts them; the
//! issuer serves its discovery document, its keys and `POST /token`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lambda_runtime::LambdaEvent;
use ripple::provision::{self, Clients};
use ripple::runtime::issuer::{LOCAL_AUDIENCE, LocalIssuer, TOKEN_LIFETIME};
use ripple::runtime::{RunOptions, Runtime, invoke_fn};
use ripple::template::Template;
use serde_json::{Value, json};

const TEMPLATE: &str = r#"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Customers
        Authorizers:
          Customers:
            IdentitySource: $request.header.Authorization
            JwtConfiguration: {issuer: "https://issuer.example", audience: [app]}
  Echo:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: echo
    Properties:
      Events:
        Write:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: POST
            Path: /things
            Auth: {AuthorizationScopes: [ripple/orders.write]}
        Read:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: /things
            Auth: {AuthorizationScopes: [ripple/orders.read]}
        Open:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: /health
            Auth: {Authorizer: NONE}
"#;

const WRITE: &str = "ripple/orders.write";
const READ: &str = "ripple/orders.read";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut request = hyper::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The function echoes the identity the API handed it.
fn echo() -> ripple::runtime::Invoke {
    invoke_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
        let jwt = event.payload.request_context.authorizer.and_then(|a| a.jwt);
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = 200;
        response.body = Some(aws_lambda_events::encodings::Body::Text(
            json!({
                "sub": jwt.as_ref().and_then(|j| j.claims.get("sub").cloned()),
                "scopes": jwt.as_ref().and_then(|j| j.scopes.clone()),
                "exp": jwt.as_ref().and_then(|j| j.claims.get("exp").cloned()),
            })
            .to_string(),
        ));
        Ok::<_, lambda_runtime::Error>(response)
    })
}

#[tokio::test]
async fn the_local_api_lets_through_only_valid_tokens_with_the_routes_scope() {
    let aws = support::emulator().await;
    let template = Template::parse(TEMPLATE).unwrap();
    let stack = support::stack_name("auth", "jwt");
    let deployment = provision::provision(&aws, &template, &stack).await.unwrap();
    let handlers = HashMap::from([("Echo".to_owned(), echo())]);
    let runtime = Runtime::start(
        &Clients::new(&aws),
        &deployment,
        handlers,
        RunOptions::default(),
    )
    .await
    .unwrap();
    let api = runtime.http_url().unwrap();
    let issuer = runtime
        .issuer()
        .expect("protected routes start an issuer")
        .clone();
    let things = format!("{api}/things");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // The issuer publishes what API Gateway would fetch, and mints tokens for curl.
    let (status, discovery) = send(
        &client,
        "GET",
        &format!("{}/.well-known/openid-configuration", issuer.url()),
        None,
        "",
    )
    .await;
    assert_eq!(
        (status, discovery["issuer"].as_str()),
        (200, Some(issuer.url()))
    );
    let (status, jwks) = send(
        &client,
        "GET",
        discovery["jwks_uri"].as_str().unwrap(),
        None,
        "",
    )
    .await;
    assert_eq!(
        (status, jwks["keys"][0]["kty"].as_str()),
        (200, Some("RSA"))
    );
    let (status, minted) = send(
        &client,
        "POST",
        &format!("{}/token", issuer.url()),
        None,
        "sub=c-9&scope=ripple%2Forders.read",
    )
    .await;
    assert_eq!(status, 200, "{minted}");
    let curl_token = minted["access_token"].as_str().unwrap().to_owned();

    let valid = issuer.token("c-1", &[WRITE, READ]).unwrap();
    let (status, seen) = send(&client, "POST", &things, Some(&valid), "{}").await;
    assert_eq!(status, 200);
    assert_eq!(seen["sub"], "c-1", "the claims reach the function");
    assert_eq!(seen["scopes"], json!([WRITE, READ]));
    assert!(
        seen["exp"]
            .as_str()
            .is_some_and(|e| e.parse::<u64>().is_ok())
    );
    let (status, seen) = send(&client, "GET", &things, Some(&curl_token), "").await;
    assert_eq!((status, seen["sub"].as_str()), (200, Some("c-9")));

    let unauthorized = json!({"message": "Unauthorized"});
    assert_eq!(
        send(&client, "POST", &things, None, "{}").await,
        (401, unauthorized.clone()),
        "no token"
    );
    let expired = issuer
        .sign(&issuer.claims(
            "c-1",
            &[WRITE],
            SystemTime::now() - Duration::from_secs(7200),
            TOKEN_LIFETIME,
        ))
        .unwrap();
    assert_eq!(
        send(&client, "POST", &things, Some(&expired), "{}").await.0,
        401,
        "expired"
    );
    let mut other_app = issuer.claims("c-1", &[WRITE], SystemTime::now(), TOKEN_LIFETIME);
    other_app["client_id"] = json!("not-this-api");
    let other_app = issuer.sign(&other_app).unwrap();
    assert_eq!(
        send(&client, "POST", &things, Some(&other_app), "{}")
            .await
            .0,
        401,
        "wrong audience"
    );
    let impostor = LocalIssuer::generate(issuer.url()).unwrap();
    let forged = impostor.token("c-1", &[WRITE]).unwrap();
    assert_eq!(
        send(&client, "POST", &things, Some(&forged), "{}").await.0,
        401,
        "bad signature"
    );
    let read_only = issuer.token("c-1", &[READ]).unwrap();
    assert_eq!(
        send(&client, "POST", &things, Some(&read_only), "{}").await,
        (403, json!({"message": "Forbidden"})),
        "wrong scope"
    );
    let (status, seen) = send(&client, "GET", &format!("{api}/health"), None, "").await;
    assert_eq!(
        (status, &seen["sub"]),
        (200, &Value::Null),
        "an open route needs nothing"
    );
    assert_eq!(LOCAL_AUDIENCE, "ripple-local");

    runtime.stop().await;
    provision::teardown(&aws, &deployment).await.unwrap();
}
