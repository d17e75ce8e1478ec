//! The one outgoing HTTP client: a pooled hyper-util client (HTTP/1.1 with
//! keep-alive) that reaches `http` and `https` targets through rustls, never
//! follows redirects, bounds every exchange by a timeout, keeps at most
//! [`KEPT_BODY_BYTES`] + 1 of a response body, and guards against SSRF.
//!
//! The SSRF guard refuses loopback, private, link-local, cloud metadata and
//! other non-public addresses unless `allow_private_targets` is set. It checks
//! the address actually connected to: names go through a resolver plugged into
//! the connector that drops refused addresses (so DNS rebinding cannot slip a
//! private address past a textual check), and literal IP hosts, which never
//! reach a resolver, are checked before sending.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use url::{Host, Url};

use crate::model::KEPT_BODY_BYTES;

/// `user-agent` of every outgoing request unless the options say otherwise.
pub const DEFAULT_USER_AGENT: &str = concat!("hookshape/", env!("CARGO_PKG_VERSION"));

/// How long an idle keep-alive connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// A response body is read this far so the connection can go back to the
/// pool; past it the connection is dropped instead.
const DRAIN_LIMIT: usize = 1024 * 1024;

/// How the client is built; one set per process.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Bound on one whole exchange: connect, TLS, send, and reading the response body.
    pub timeout: Duration,
    /// Reach loopback, private, link-local and metadata addresses too (tests, trusted networks).
    pub allow_private_targets: bool,
    /// PEM certificates trusted in addition to the webpki roots (private CAs).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// The `User-Agent` sent with every request.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            allow_private_targets: false,
            extra_roots_pem: None,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra roots are not valid PEM.
    #[error("extra root certificates: {0}")]
    BadRootPem(String),
    /// The extra roots hold no certificate.
    #[error("extra root certificates: no PEM CERTIFICATE block found")]
    NoRootsInPem,
    /// The user agent is not a valid header value.
    #[error("user agent {0:?} is not a valid header value")]
    BadUserAgent(String),
    /// rustls rejected the TLS configuration.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why an outgoing request got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The target is not allowed (see [`refused_reason`]); retrying will not help.
    #[error("target refused: {0}")]
    Refused(String),
    /// The whole response did not arrive within the timeout.
    #[error("no complete response within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// Connecting failed: name resolution or TCP.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The request could not be sent or the exchange broke off.
    #[error("HTTP exchange failed: {0}")]
    Protocol(String),
}

/// What came back. Any status counts, redirects included: they are not followed.
#[derive(Debug, Clone)]
pub struct Response {
    /// The receiver's HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// At most [`KEPT_BODY_BYTES`] + 1 bytes, so a caller can tell the body was cut.
    pub body: Bytes,
}

type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// The process-wide outgoing client; clones share one connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    allow_private_targets: bool,
    user_agent: HeaderValue,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with these options; fails on bad roots or user agent.
    pub fn new(opts: ClientOptions) -> Result<HttpClient, ClientError> {
        Self::with_lookup(opts, Arc::new(SystemLookup))
    }

    /// [`HttpClient::new`] resolving names with `lookup` (tests stand in a
    /// resolver whose answers change).
    fn with_lookup(
        opts: ClientOptions,
        lookup: Arc<dyn Lookup>,
    ) -> Result<HttpClient, ClientError> {
        let user_agent = HeaderValue::from_str(&opts.user_agent)
            .map_err(|_| ClientError::BadUserAgent(opts.user_agent.clone()))?;
        let tls = tls_config(opts.extra_roots_pem.as_deref())?;
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            allow_private_targets: opts.allow_private_targets,
            lookup,
        });
        // The https connector wraps this one, so it must accept https URIs too.
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);

        Ok(HttpClient {
            inner,
            timeout: opts.timeout,
            allow_private_targets: opts.allow_private_targets,
            user_agent,
        })
    }

    /// POSTs `body` with `headers` (plus `user-agent`) and reads the response.
    /// Its span names the host only (a URL's path or query may hold a
    /// secret); the delivery's ids are on the caller's span.
    #[tracing::instrument(skip_all, fields(host = url.host_str()))]
    pub async fn post(
        &self,
        url: &Url,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response, SendError> {
        check_scheme_and_ip(url, self.allow_private_targets).map_err(SendError::Refused)?;
        let mut target = url.clone();
        target.set_fragment(None);
        let uri: http::Uri = target
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| SendError::Protocol(e.to_string()))?;
        headers.insert(USER_AGENT, self.user_agent.clone());
        let mut request = Request::post(uri)
            .body(Full::new(body))
            .map_err(|e| SendError::Protocol(e.to_string()))?;
        *request.headers_mut() = headers;

        let exchange = async {
            let response = self.inner.request(request).await.map_err(classify)?;
            let (parts, body) = response.into_parts();
            let body = read_capped(body)
                .await
                .map_err(|e| SendError::Protocol(describe(&e)))?;
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(self.timeout))?
    }
}

fn tls_config(extra_roots_pem: Option<&[u8]>) -> Result<ClientConfig, ClientError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_roots_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ClientError::BadRootPem(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::BadRootPem(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ClientError::NoRootsInPem);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Keeps the first [`KEPT_BODY_BYTES`] + 1 bytes and drains up to
/// [`DRAIN_LIMIT`]; a longer body is abandoned, which closes the connection.
async fn read_capped(mut body: Incoming) -> Result<Bytes, hyper::Error> {
    let keep = KEPT_BODY_BYTES + 1;
    let mut kept = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        seen += data.len();
        let room = keep - kept.len();
        kept.extend_from_slice(&data[..data.len().min(room)]);
        if seen > DRAIN_LIMIT {
            break;
        }
    }
    Ok(kept.freeze())
}

type BoxError = Box<dyn StdError + Send + Sync>;
type Lookups = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Name resolution: the system's, or a stand-in in tests.
trait Lookup: Send + Sync {
    /// The addresses `host` resolves to now.
    fn lookup(&self, host: &str) -> Lookups;
}

/// The system resolver (getaddrinfo on a blocking thread).
struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> Lookups {
        let host = host.to_owned();
        Box::pin(async move {
            // The connector sets the real port afterwards.
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|addr| addr.ip()).collect())
        })
    }
}

/// Resolves a name once and, unless private targets are allowed, drops every
/// refused address; a name left with none is an error carrying
/// [`RefusedTarget`]. The connector connects to exactly the addresses this
/// returns, so the address checked is the address connected to: a DNS answer
/// that changes between a check and a connect has no second look-up to hide
/// in.
#[derive(Clone)]
struct GuardedResolver {
    allow_private_targets: bool,
    lookup: Arc<dyn Lookup>,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private_targets = self.allow_private_targets;
        let lookup = self.lookup.lookup(name.as_str());
        Box::pin(async move {
            // Port 0: the connector sets the real port afterwards.
            let addrs = lookup.await?.into_iter().map(|ip| SocketAddr::new(ip, 0));
            if allow_private_targets {
                return Ok(addrs.collect::<Vec<_>>().into_iter());
            }
            let (allowed, refused): (Vec<_>, Vec<_>) =
                addrs.partition(|addr| refused_reason(addr.ip()).is_none());
            if allowed.is_empty() && !refused.is_empty() {
                return Err(RefusedTarget::resolved(name.as_str(), &refused).into());
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Marks a refusal inside hyper's error chain so [`classify`] can tell it
/// from a network failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RefusedTarget(String);

impl RefusedTarget {
    /// Says why in words only: the addresses a name resolved to are the
    /// operator's network layout, not the tenant's business.
    fn resolved(host: &str, refused: &[SocketAddr]) -> RefusedTarget {
        let mut reasons: Vec<&str> = refused
            .iter()
            .filter_map(|addr| refused_reason(addr.ip()))
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        RefusedTarget(format!(
            "{host} resolves only to refused addresses ({})",
            reasons.join(", ")
        ))
    }
}

/// Each error in the chain. `io::Error::source` skips the error it wraps, so
/// for those the walk steps into the wrapped error instead.
fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| match e.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// The chain's messages joined with ": ", repeats dropped.
fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes(err) {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn classify(err: hyper_util::client::legacy::Error) -> SendError {
    for cause in causes(&err) {
        if let Some(refused) = cause.downcast_ref::<RefusedTarget>() {
            return SendError::Refused(refused.0.clone());
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return SendError::Tls(tls.to_string());
        }
    }
    // The top level only says "client error (Connect)"; the causes say what happened.
    let message = match err.source() {
        Some(source) => describe(source),
        None => err.to_string(),
    };
    if err.is_connect() {
        SendError::Connect(message)
    } else {
        SendError::Protocol(message)
    }
}

fn check_scheme_and_ip(url: &Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the URL scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    let ip = match url.host() {
        None => return Err("the URL has no host".to_owned()),
        Some(Host::Domain(_)) => return Ok(()),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    match refused_reason(ip) {
        Some(reason) if !allow_private => Err(format!("{ip} is {reason}")),
        _ => Ok(()),
    }
}

/// The check the API runs when a subscription is created: an http or https
/// URL with a host that, unless private targets are allowed, is neither a
/// refused literal address nor a `localhost` name. Names are resolved only at
/// send time.
pub fn check_literal_target(url: &Url, allow_private: bool) -> Result<(), String> {
    check_scheme_and_ip(url, allow_private)?;
    if let Some(Host::Domain(domain)) = url.host()
        && !allow_private
    {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        // RFC 6761: localhost and every name under it are loopback.
        if domain == "localhost" || domain.ends_with(".localhost") {
            return Err(format!("{domain} is a loopback name"));
        }
    }
    Ok(())
}

/// Why an address may not be a webhook target, or `None` when it may.
pub fn refused_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

const AWS_METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
const ALIBABA_METADATA_V4: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = if ip == AWS_METADATA_V4 || ip == ALIBABA_METADATA_V4 {
        "a cloud metadata address"
    } else if ip.is_unspecified() {
        "the unspecified address"
    } else if a == 0 {
        "a \"this network\" address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address"
    } else if a == 100 && (b & 0xc0) == 64 {
        "a carrier-grade NAT address"
    } else if ip.is_broadcast() {
        "the broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_documentation() {
        "a documentation address"
    } else if a == 198 && (b & 0xfe) == 18 {
        "a benchmarking address"
    } else if a == 192 && b == 0 && c == 0 {
        "an IETF protocol assignment address"
    } else if a >= 240 {
        "a reserved address"
    } else {
        return None;
    };
    Some(reason)
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return refused_v4(v4);
    }
    let s = ip.segments();
    let reason = if ip == AWS_METADATA_V6 {
        "a cloud metadata address"
    } else if ip.is_unspecified() {
        "the unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_unique_local() {
        "a unique local (private) address"
    } else if ip.is_unicast_link_local() {
        "a link-local address"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "a site-local address"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address"
    } else if s[..4] == [0x0100, 0, 0, 0] {
        "a discard-only address"
    } else if s[..3] == [0x64, 0xff9b, 1] {
        // RFC 8215: NAT64 inside an organisation, to whatever it routes.
        "a local-use NAT64 address"
    } else if s[..2] == [0x2001, 0] {
        // RFC 4380: tunnels to a client address hidden in the low bits.
        "a Teredo address"
    } else {
        return None;
    };
    Some(reason)
}

/// The IPv4 address an IPv6 address stands for: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let compatible = s[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if compatible || nat64 {
        Some(from(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(from(s[1], s[2]))
    } else {
        None
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP-date
/// (a date already past means no wait). `None` when absent or unparsable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
