//! Who is calling: the identity API Gateway's JWT authorizer verified, as the request carries it.
//!
//! API Gateway checks the token (signature, issuer, audience, expiry and the route's scopes)
//! before the function runs and passes its claims in `requestContext.authorizer.jwt`. The customer
//! is the token's subject (`sub`), never anything the body says. The function checks again that
//! an identity is there and that it has the route's scope, so a route deployed without the
//! authorizer fails closed instead of serving anonymous callers.

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;

/// The OAuth scopes of the API, as the template's routes require them.
pub mod scopes {
    /// Placing and cancelling orders.
    pub const WRITE: &str = "ripple/orders.write";
    /// Reading orders and their history.
    pub const READ: &str = "ripple/orders.read";
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The customer: the token's `sub`.
    pub customer_id: String,
    scopes: Vec<String>,
}

/// Why a request has no usable identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthorized {
    /// No verified token, or one without a subject: 401.
    Unauthenticated,
    /// A token without the route's scope: 403.
    MissingScope(&'static str),
}

impl Caller {
    /// The caller of `request`, who must hold `scope`.
    pub fn of(
        request: &ApiGatewayV2httpRequest,
        scope: &'static str,
    ) -> Result<Self, Unauthorized> {
        let jwt = request
            .request_context
            .authorizer
            .as_ref()
            .and_then(|authorizer| authorizer.jwt.as_ref())
            .ok_or(Unauthorized::Unauthenticated)?;
        let customer_id = jwt
            .claims
            .get("sub")
            .filter(|sub| !sub.is_empty())
            .ok_or(Unauthorized::Unauthenticated)?
            .clone();
        // API Gateway lists the token's scopes, or leaves them in the claims as the token has
        // them: `scope` (space-separated, OAuth 2.0) or `scp` (which it renders as `[a b]`).
        let mut scopes: Vec<String> = jwt.scopes.clone().unwrap_or_default();
        for claim in ["scope", "scp"] {
            if let Some(value) = jwt.claims.get(claim) {
                let listed = value.trim_start_matches('[').trim_end_matches(']');
                scopes.extend(listed.split_whitespace().map(str::to_owned));
            }
        }
        let caller = Caller {
            customer_id,
            scopes,
        };
        if !caller.has_scope(scope) {
            return Err(Unauthorized::MissingScope(scope));
        }
        Ok(caller)
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    };

    fn request(claims: &[(&str, &str)], scopes: Option<Vec<&str>>) -> ApiGatewayV2httpRequest {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        jwt.scopes = scopes.map(|s| s.into_iter().map(str::to_owned).collect());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        let mut request = ApiGatewayV2httpRequest::default();
        request.request_context.authorizer = Some(authorizer);
        request
    }

    #[test]
    fn the_customer_is_the_subject_and_the_scope_is_required() {
        let r = request(&[("sub", "c-1")], Some(vec![scopes::WRITE]));
        let caller = Caller::of(&r, scopes::WRITE).unwrap();
        assert_eq!(caller.customer_id, "c-1");
        assert_eq!(
            Caller::of(&r, scopes::READ),
            Err(Unauthorized::MissingScope(scopes::READ))
        );
    }

    #[test]
    fn scopes_left_in_the_claims_count() {
        let scope = format!("openid {}", scopes::READ);
        let r = request(&[("sub", "c-1"), ("scope", &scope)], None);
        assert!(Caller::of(&r, scopes::READ).is_ok());
        let scp = format!("[{} {}]", scopes::WRITE, scopes::READ);
        let r = request(&[("sub", "c-1"), ("scp", &scp)], None);
        assert!(Caller::of(&r, scopes::WRITE).is_ok());
    }

    #[test]
    fn no_authorizer_or_no_subject_is_unauthenticated() {
        assert_eq!(
            Caller::of(&ApiGatewayV2httpRequest::default(), scopes::READ),
            Err(Unauthorized::Unauthenticated)
        );
        let r = request(&[("client_id", "x")], Some(vec![scopes::READ]));
        assert_eq!(
            Caller::of(&r, scopes::READ),
            Err(Unauthorized::Unauthenticated)
        );
    }
}
