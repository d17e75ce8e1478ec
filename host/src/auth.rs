//! Bearer-token authentication and the authorization rules of the HTTP API.
//!
//! Tokens come from `[[auth.tokens]]`. They are kept only as SHA-256 digests:
//! a presented token is hashed and compared with every digest in constant
//! time, so neither the response time nor a memory dump tells how much of a
//! real token a guess matched. Open access is a separate, explicit mode
//! (`[auth] open = true`, loopback only); with neither tokens nor `open`, the
//! server adds the first-start admin token's digest (`crate::admin_token`).
//!
//! The rules: an admin token may do anything within its tenants; a publisher
//! token may only publish events to its tenants; plugins are shared by every
//! tenant, so managing them takes an admin token scoped to `*`.

use std::fmt;

use http::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Role, TenantScope, TokenConfig};
use crate::ids::Tenant;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Send an event into a tenant.
    Publish(&'a Tenant),
    /// Read a tenant's events and manage its subscriptions and attempts.
    Administer(&'a Tenant),
    /// List and upload plugins, which every tenant shares.
    ManagePlugins,
    /// List the tenants it administers: any admin token.
    ListTenants,
}

/// Why a request could not be tied to a token (HTTP 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    /// No `Authorization` header.
    #[error("this route needs an `Authorization: Bearer TOKEN` header")]
    Missing,
    /// An `Authorization` header that is not `Bearer TOKEN`.
    #[error("the Authorization header must have the form `Bearer TOKEN`")]
    Malformed,
    /// A token the config does not declare.
    #[error("the bearer token is not valid")]
    UnknownToken,
}

/// Why a known token may not do what it asked (HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    /// A publisher token asked for more than publishing events.
    #[error("a publisher token may only publish events")]
    PublisherOnly,
    /// The token is not scoped to this tenant.
    #[error("this token may not access tenant `{0}`")]
    Tenant(Tenant),
    /// Plugin management by a token scoped to fewer than all tenants.
    #[error(
        "plugins are shared by every tenant: managing them takes an admin token scoped to \"*\""
    )]
    AllTenantsRequired,
}

/// The tenants a token reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    All,
    Only(Vec<Tenant>),
}

impl Scope {
    fn from_config(scopes: &[TenantScope]) -> Self {
        let mut only = Vec::new();
        for scope in scopes {
            match scope {
                TenantScope::Any => return Scope::All,
                TenantScope::Tenant(tenant) => only.push(tenant.clone()),
            }
        }
        Scope::Only(only)
    }

    fn contains(&self, tenant: &Tenant) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(tenants) => tenants.contains(tenant),
        }
    }
}

/// What an authenticated caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    admin: bool,
    scope: Scope,
}

impl Grant {
    /// Everything, everywhere: what open access and the first-start token give.
    pub fn unrestricted() -> Self {
        Self {
            admin: true,
            scope: Scope::All,
        }
    }

    /// The grant of one configured token.
    pub fn from_token(token: &TokenConfig) -> Self {
        Self {
            admin: match token.role {
                Role::Admin => true,
                Role::Publisher => false,
            },
            scope: Scope::from_config(&token.tenants),
        }
    }

    /// Whether it may administer `tenant`.
    pub fn administers(&self, tenant: &Tenant) -> bool {
        self.authorize(Access::Administer(tenant)).is_ok()
    }

    /// The authorization decision. The role is checked before the tenant, so
    /// a publisher asking for an admin route hears about its role.
    pub fn authorize(&self, access: Access<'_>) -> Result<(), Forbidden> {
        let tenant = match access {
            Access::Publish(tenant) => tenant,
            Access::Administer(tenant) if self.admin => tenant,
            Access::Administer(_) => return Err(Forbidden::PublisherOnly),
            Access::ManagePlugins if !self.admin => return Err(Forbidden::PublisherOnly),
            Access::ManagePlugins if self.scope == Scope::All => return Ok(()),
            Access::ManagePlugins => return Err(Forbidden::AllTenantsRequired),
            Access::ListTenants if self.admin => return Ok(()),
            Access::ListTenants => return Err(Forbidden::PublisherOnly),
        };
        if self.scope.contains(tenant) {
            Ok(())
        } else {
            Err(Forbidden::Tenant(tenant.clone()))
        }
    }
}

/// The SHA-256 of a token: all hookshape keeps of it.
pub type TokenDigest = [u8; 32];

/// The digest hookshape keeps of `token`.
pub fn digest(token: &[u8]) -> TokenDigest {
    Sha256::digest(token).into()
}

/// Turns an `Authorization` header into a [`Grant`].
pub struct Authenticator {
    open: bool,
    tokens: Vec<(TokenDigest, Grant)>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("open", &self.open)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator for the configured tokens; with none, every request
    /// is refused until [`Authenticator::with_admin_digest`] adds one.
    pub fn new(tokens: &[TokenConfig]) -> Self {
        Self {
            open: false,
            tokens: tokens
                .iter()
                .map(|t| (digest(t.token.as_bytes()), Grant::from_token(t)))
                .collect(),
        }
    }

    /// Open access (`[auth] open = true`): every request is let in.
    pub fn open() -> Self {
        Self {
            open: true,
            tokens: Vec::new(),
        }
    }

    /// Adds an admin token over every tenant known only by its digest (the
    /// first-start token).
    pub fn with_admin_digest(mut self, digest: TokenDigest) -> Self {
        self.tokens.push((digest, Grant::unrestricted()));
        self
    }

    /// True when every request is let in.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Who is calling, from the request's `Authorization` header. In open
    /// mode the header is ignored.
    pub fn authenticate(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Grant, Unauthenticated> {
        if self.is_open() {
            return Ok(Grant::unrestricted());
        }
        let token = bearer_token(authorization.ok_or(Unauthenticated::Missing)?)?;
        let presented = digest(token);
        // Every digest is compared, matching or not, so the time taken does
        // not depend on which token (if any) matched.
        let mut found = None;
        for (known, grant) in &self.tokens {
            if bool::from(known[..].ct_eq(&presented[..])) && found.is_none() {
                found = Some(grant);
            }
        }
        found.cloned().ok_or(Unauthenticated::UnknownToken)
    }
}

/// The token of a `Bearer` credential; the scheme is case-insensitive (RFC 9110).
fn bearer_token(header: &HeaderValue) -> Result<&[u8], Unauthenticated> {
    let value = header.as_bytes();
    let scheme = b"bearer ";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return Err(Unauthenticated::Malformed);
    }
    let token = value[scheme.len()..].trim_ascii();
    if token.is_empty() {
        return Err(Unauthenticated::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> Tenant {
        name.parse().unwrap()
    }

    fn token(secret: &str, role: Role, tenants: &[&str]) -> TokenConfig {
        TokenConfig {
            token: secret.to_owned(),
            role,
            tenants: tenants
                .iter()
                .map(|t| match *t {
                    "*" => TenantScope::Any,
                    name => TenantScope::Tenant(tenant(name)),
                })
                .collect(),
        }
    }

    fn grant(role: Role, tenants: &[&str]) -> Grant {
        Grant::from_token(&token("unused", role, tenants))
    }

    #[test]
    fn admin_with_every_tenant_may_do_everything() {
        let g = grant(Role::Admin, &["*"]);
        let acme = tenant("acme");
        assert_eq!(g.authorize(Access::Publish(&acme)), Ok(()));
        assert_eq!(g.authorize(Access::Administer(&acme)), Ok(()));
        assert_eq!(g.authorize(Access::ManagePlugins), Ok(()));
    }

    #[test]
    fn scoped_admin_stays_in_its_tenants_and_off_plugins() {
        let g = grant(Role::Admin, &["acme", "globex"]);
        let (acme, globex, initech) = (tenant("acme"), tenant("globex"), tenant("initech"));
        assert_eq!(g.authorize(Access::Administer(&acme)), Ok(()));
        assert_eq!(g.authorize(Access::Publish(&globex)), Ok(()));
        assert_eq!(
            g.authorize(Access::Administer(&initech)),
            Err(Forbidden::Tenant(initech.clone()))
        );
        assert_eq!(
            g.authorize(Access::Publish(&initech)),
            Err(Forbidden::Tenant(initech))
        );
        assert_eq!(
            g.authorize(Access::ManagePlugins),
            Err(Forbidden::AllTenantsRequired)
        );
        assert_eq!(g.authorize(Access::ListTenants), Ok(()));
        assert!(g.administers(&acme) && !g.administers(&tenant("initech")));
    }

    #[test]
    fn publisher_may_only_publish_in_scope() {
        let g = grant(Role::Publisher, &["acme"]);
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        assert_eq!(g.authorize(Access::Publish(&acme)), Ok(()));
        assert_eq!(
            g.authorize(Access::Publish(&globex)),
            Err(Forbidden::Tenant(globex.clone()))
        );
        // The role is the first reason given, whatever the tenant.
        assert_eq!(
            g.authorize(Access::Administer(&globex)),
            Err(Forbidden::PublisherOnly)
        );
        assert_eq!(
            grant(Role::Publisher, &["*"]).authorize(Access::ManagePlugins),
            Err(Forbidden::PublisherOnly)
        );
        assert_eq!(
            g.authorize(Access::ListTenants),
            Err(Forbidden::PublisherOnly)
        );
        assert!(!g.administers(&acme));
    }

    #[test]
    fn a_token_with_no_tenants_reaches_none() {
        let g = grant(Role::Admin, &[]);
        let acme = tenant("acme");
        assert_eq!(
            g.authorize(Access::Administer(&acme)),
            Err(Forbidden::Tenant(acme))
        );
    }

    #[test]
    fn authenticate_finds_the_matching_token() {
        let auth = Authenticator::new(&[
            token("admin-secret", Role::Admin, &["*"]),
            token("pub-secret", Role::Publisher, &["acme"]),
        ]);
        assert!(!auth.is_open());
        let header = |v: &'static str| HeaderValue::from_static(v);
        assert_eq!(
            auth.authenticate(Some(&header("Bearer admin-secret"))),
            Ok(grant(Role::Admin, &["*"]))
        );
        assert_eq!(
            auth.authenticate(Some(&header("bearer   pub-secret "))),
            Ok(grant(Role::Publisher, &["acme"]))
        );
        assert_eq!(
            auth.authenticate(Some(&header("Bearer admin-secre"))),
            Err(Unauthenticated::UnknownToken)
        );
        assert_eq!(
            auth.authenticate(Some(&header("Bearer admin-secret2"))),
            Err(Unauthenticated::UnknownToken)
        );
    }

    #[test]
    fn authenticate_rejects_missing_and_malformed_headers() {
        let auth = Authenticator::new(&[token("s3cret", Role::Admin, &["*"])]);
        assert_eq!(auth.authenticate(None), Err(Unauthenticated::Missing));
        for bad in [
            "s3cret",
            "Basic czNjcmV0",
            "Bearer",
            "Bearer    ",
            "Bearers3cret",
        ] {
            assert_eq!(
                auth.authenticate(Some(&HeaderValue::from_static(bad))),
                Err(Unauthenticated::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn no_tokens_lets_nobody_in_until_the_first_start_digest_is_added() {
        let auth = Authenticator::new(&[]);
        assert!(!auth.is_open());
        let header = HeaderValue::from_static("Bearer hs_first");
        assert_eq!(
            auth.authenticate(Some(&header)),
            Err(Unauthenticated::UnknownToken)
        );
        let auth = auth.with_admin_digest(digest(b"hs_first"));
        assert_eq!(auth.authenticate(Some(&header)), Ok(Grant::unrestricted()));
        assert_eq!(auth.authenticate(None), Err(Unauthenticated::Missing));
    }

    #[test]
    fn open_access_lets_everything_in() {
        let auth = Authenticator::open();
        assert!(auth.is_open());
        assert_eq!(auth.authenticate(None), Ok(Grant::unrestricted()));
        assert_eq!(
            auth.authenticate(Some(&HeaderValue::from_static("Bearer whatever"))),
            Ok(Grant::unrestricted())
        );
    }

    #[test]
    fn debug_output_hides_tokens() {
        let auth = Authenticator::new(&[token("s3cret", Role::Admin, &["*"])]);
        assert_eq!(
            format!("{auth:?}"),
            "Authenticator { open: false, tokens: 1 }"
        );
    }
}
