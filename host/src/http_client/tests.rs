use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::*;

/// What a test receiver saw of one request.
struct Seen {
    headers: HeaderMap,
    body: Bytes,
}

/// A loopback HTTP(S) server answering every request with `reply`, counting
/// accepted TCP connections and reporting each request it reads.
struct Receiver {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(reply: Bytes, tls: Option<TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, seen) = mpsc::unbounded_channel();
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let (tx, reply, tls) = (tx.clone(), reply.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (tx, reply) = (tx.clone(), reply.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let _ = tx.send(Seen {
                                headers: parts.headers,
                                body,
                            });
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(reply)))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    // Errors here are the client hanging up or failing TLS: what the tests provoke.
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            accepted,
            seen,
            task,
        }
    }

    fn url(&self, scheme: &str, host: &str) -> Url {
        Url::parse(&format!("{scheme}://{host}:{}/hook?x=1", self.addr.port())).unwrap()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn client(allow_private_targets: bool) -> HttpClient {
    HttpClient::new(ClientOptions {
        timeout: Duration::from_secs(5),
        allow_private_targets,
        ..ClientOptions::default()
    })
    .unwrap()
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("webhook-id", HeaderValue::from_static("evt_1"));
    headers
}

#[test]
fn refused_reason_table() {
    let refused = [
        ("0.0.0.0", "the unspecified address"),
        ("0.1.2.3", "a \"this network\" address"),
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("100.127.255.255", "a carrier-grade NAT address"),
        ("255.255.255.255", "the broadcast address"),
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("192.0.2.1", "a documentation address"),
        ("198.51.100.7", "a documentation address"),
        ("203.0.113.9", "a documentation address"),
        ("198.18.0.1", "a benchmarking address"),
        ("192.0.0.8", "an IETF protocol assignment address"),
        ("240.0.0.1", "a reserved address"),
        ("::", "the unspecified address"),
        ("::1", "a loopback address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("fc00::1", "a unique local (private) address"),
        ("fdab:cdef::1", "a unique local (private) address"),
        ("fe80::1", "a link-local address"),
        ("febf::1", "a link-local address"),
        ("fec0::1", "a site-local address"),
        ("ff02::1", "a multicast address"),
        ("2001:db8::1", "a documentation address"),
        ("100::1", "a discard-only address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.1.2.3", "a private address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("::ffff:0.0.0.0", "the unspecified address"),
        ("::127.0.0.1", "a loopback address"),
        ("::192.168.0.1", "a private address"),
        ("64:ff9b::7f00:1", "a loopback address"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
        ("2002:c0a8:101::1", "a private address"),
    ];
    for (ip, reason) in refused {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(refused_reason(parsed), Some(reason), "{ip}");
    }
    let allowed = [
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.0.1",
        "198.20.0.1",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];
    for ip in allowed {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(refused_reason(parsed), None, "{ip}");
    }
}

fn reason(ip: &str) -> Option<&'static str> {
    refused_reason(ip.parse().unwrap())
}

#[test]
fn ipv4_mapped_addresses_are_judged_by_their_ipv4() {
    assert_eq!(reason("::ffff:10.20.30.40"), Some("a private address"));
    assert_eq!(reason("::ffff:7f00:1"), Some("a loopback address"));
    assert_eq!(reason("::ffff:93.184.216.34"), None);
}

#[test]
fn well_known_nat64_addresses_are_judged_by_their_ipv4() {
    assert_eq!(reason("64:ff9b::10.20.30.40"), Some("a private address"));
    assert_eq!(reason("64:ff9b::127.0.0.1"), Some("a loopback address"));
    assert_eq!(reason("64:ff9b::93.184.216.34"), None);
}

#[test]
fn local_use_nat64_addresses_are_refused() {
    for ip in ["64:ff9b:1::a14:1e28", "64:ff9b:1:ffff::5db8:d822"] {
        assert_eq!(reason(ip), Some("a local-use NAT64 address"), "{ip}");
    }
    // Just outside 64:ff9b:1::/48.
    assert_eq!(reason("64:ff9b:2::5db8:d822"), None);
}

#[test]
fn teredo_addresses_are_refused() {
    for ip in ["2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"] {
        assert_eq!(reason(ip), Some("a Teredo address"), "{ip}");
    }
    // 2001:1::/32 and the rest of 2001::/16 are ordinary global unicast.
    assert_eq!(reason("2001:1::1"), None);
    assert_eq!(reason("2001:4860:4860::8888"), None);
}

#[test]
fn six_to_four_addresses_are_judged_by_their_ipv4() {
    assert_eq!(reason("2002:0a14:1e28::1"), Some("a private address"));
    assert_eq!(reason("2002:7f00:1::1"), Some("a loopback address"));
    assert_eq!(reason("2002:5db8:d822::1"), None);
}

/// A resolver whose answer changes with every call, counting the calls.
struct Rebinding {
    answers: Vec<Vec<IpAddr>>,
    calls: AtomicUsize,
}

impl Rebinding {
    fn new(answers: &[&[&str]]) -> Arc<Rebinding> {
        Arc::new(Rebinding {
            answers: answers
                .iter()
                .map(|ips| ips.iter().map(|ip| ip.parse().unwrap()).collect())
                .collect(),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Lookup for Rebinding {
    fn lookup(&self, _host: &str) -> Lookups {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers[n.min(self.answers.len() - 1)].clone();
        Box::pin(async move { Ok(answer) })
    }
}

async fn resolve(resolver: &mut GuardedResolver, host: &str) -> Result<Vec<SocketAddr>, String> {
    let name: Name = host.parse().unwrap();
    tower_service::Service::call(resolver, name)
        .await
        .map(Iterator::collect)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_address_checked_is_the_address_handed_to_the_connector() {
    // Public first, then private: the classic rebinding sequence.
    let lookup = Rebinding::new(&[&["93.184.216.34"], &["10.20.30.40", "127.0.0.1"]]);
    let mut resolver = GuardedResolver {
        allow_private_targets: false,
        lookup: lookup.clone(),
    };
    let first = resolve(&mut resolver, "rebind.example").await.unwrap();
    assert_eq!(first, ["93.184.216.34:0".parse().unwrap()]);
    assert_eq!(lookup.calls(), 1, "one look-up per connection");
    let second = resolve(&mut resolver, "rebind.example").await.unwrap_err();
    assert_eq!(
        second,
        "rebind.example resolves only to refused addresses (a loopback address, a private address)"
    );
    assert_eq!(lookup.calls(), 2);
}

#[tokio::test]
async fn the_client_connects_to_the_address_its_resolver_checked() {
    let receiver = Receiver::start(Bytes::new(), None).await;
    let options = |allow_private_targets| ClientOptions {
        timeout: Duration::from_secs(5),
        allow_private_targets,
        ..ClientOptions::default()
    };
    // A name only the stand-in resolver knows: a connection that reaches the
    // receiver used the resolver's answer, not a second look-up elsewhere.
    let lookup = Rebinding::new(&[&["127.0.0.1"]]);
    let allowed = HttpClient::with_lookup(options(true), lookup.clone()).unwrap();
    let url = receiver.url("http", "rebind.example");
    let response = allowed
        .post(&url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!((lookup.calls(), receiver.accepted()), (1, 1));

    let lookup = Rebinding::new(&[&["127.0.0.1"]]);
    let guarded = HttpClient::with_lookup(options(false), lookup.clone()).unwrap();
    let err = guarded
        .post(&url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Refused(
            "rebind.example resolves only to refused addresses (a loopback address)".into()
        )
    );
    assert!(!err.to_string().contains("127.0.0.1"), "{err}");
    assert_eq!((lookup.calls(), receiver.accepted()), (1, 1));
}

#[test]
fn literal_targets_are_checked_for_the_api() {
    let check = |url: &str, allow: bool| check_literal_target(&Url::parse(url).unwrap(), allow);
    assert_eq!(check("https://hooks.example.com/x", false), Ok(()));
    assert_eq!(check("http://93.184.216.34:8080/x", false), Ok(()));
    assert_eq!(
        check("http://127.0.0.1/x", false),
        Err("127.0.0.1 is a loopback address".to_owned())
    );
    assert_eq!(
        check("http://[::ffff:169.254.169.254]/latest", false),
        Err("::ffff:169.254.169.254 is a cloud metadata address".to_owned())
    );
    // The url crate normalises odd IPv4 spellings into a literal address.
    assert_eq!(
        check("http://0x7f.1/x", false),
        Err("127.0.0.1 is a loopback address".to_owned())
    );
    assert_eq!(
        check("http://LocalHost./x", false),
        Err("localhost is a loopback name".to_owned())
    );
    assert_eq!(
        check("http://api.localhost/x", false),
        Err("api.localhost is a loopback name".to_owned())
    );
    assert!(
        check("ftp://example.com/x", false)
            .unwrap_err()
            .contains("http or https")
    );
    assert!(check("mailto:ops@example.com", false).is_err());
    assert_eq!(check("http://127.0.0.1/x", true), Ok(()));
    assert_eq!(check("http://localhost/x", true), Ok(()));
    assert!(check("ftp://127.0.0.1/x", true).is_err());
}

#[tokio::test]
async fn posts_headers_body_and_user_agent() {
    let mut receiver = Receiver::start(Bytes::from_static(b"thanks"), None).await;
    let response = client(true)
        .post(
            &receiver.url("http", "127.0.0.1"),
            json_headers(),
            Bytes::from_static(br#"{"ok":true}"#),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(&response.body[..], b"thanks");
    assert_eq!(response.headers["content-length"], "6");

    let seen = receiver.seen.recv().await.unwrap();
    assert_eq!(&seen.body[..], br#"{"ok":true}"#);
    assert_eq!(seen.headers["content-type"], "application/json");
    assert_eq!(seen.headers["webhook-id"], "evt_1");
    assert_eq!(seen.headers["user-agent"], DEFAULT_USER_AGENT);
    assert_eq!(seen.headers["content-length"], "11");
}

#[tokio::test]
async fn refuses_literal_loopback_before_connecting() {
    let receiver = Receiver::start(Bytes::new(), None).await;
    let err = client(false)
        .post(
            &receiver.url("http", "127.0.0.1"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Refused("127.0.0.1 is a loopback address".to_owned())
    );
    let err = client(false)
        .post(
            &receiver.url("http", "[::1]"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SendError::Refused("::1 is a loopback address".to_owned())
    );
    assert_eq!(receiver.accepted(), 0);
}

#[tokio::test]
async fn refuses_names_resolving_to_loopback() {
    let receiver = Receiver::start(Bytes::new(), None).await;
    let err = client(false)
        .post(
            &receiver.url("http", "localhost"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .unwrap_err();
    match err {
        SendError::Refused(message) => {
            assert_eq!(
                message,
                "localhost resolves only to refused addresses (a loopback address)"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(receiver.accepted(), 0);

    // The same name is fine once private targets are allowed.
    let response = client(true)
        .post(
            &receiver.url("http", "localhost"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let err = client(true)
        .post(&url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Connect(m) if m.contains("tcp connect error")),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_receiver_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    let timeout = Duration::from_millis(300);
    let client = HttpClient::new(ClientOptions {
        timeout,
        allow_private_targets: true,
        ..ClientOptions::default()
    })
    .unwrap();
    let started = Instant::now();
    let err = client
        .post(
            &Url::parse(&format!("http://{addr}/")).unwrap(),
            HeaderMap::new(),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap_err();
    assert_eq!(err, SendError::Timeout(timeout));
    assert_eq!(err.to_string(), "no complete response within 300ms");
    assert!(started.elapsed() < Duration::from_secs(2));
    hold.abort();
}

#[tokio::test]
async fn long_bodies_are_cut_and_drained_within_bounds() {
    let client = client(true);

    // Under the drain bound: cut for the caller, but read to the end so the
    // connection goes back to the pool.
    let receiver = Receiver::start(Bytes::from(vec![b'a'; 200 * 1024]), None).await;
    let url = receiver.url("http", "127.0.0.1");
    let response = client
        .post(&url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(response.body.len(), KEPT_BODY_BYTES + 1);
    assert!(response.body.iter().all(|&b| b == b'a'));
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .post(&url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(receiver.accepted(), 1);

    // Past the drain bound: the connection is dropped instead of read out.
    let receiver = Receiver::start(Bytes::from(vec![b'b'; 8 * DRAIN_LIMIT]), None).await;
    let url = receiver.url("http", "127.0.0.1");
    let response = client
        .post(&url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(response.body.len(), KEPT_BODY_BYTES + 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .post(&url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(receiver.accepted(), 2);
}

#[tokio::test]
async fn keeps_the_connection_alive_between_posts() {
    let mut receiver = Receiver::start(Bytes::from_static(b"ok"), None).await;
    let client = client(true);
    let url = receiver.url("http", "127.0.0.1");
    for n in 0..2 {
        let body = Bytes::from(format!("{{\"n\":{n}}}"));
        let response = client
            .clone()
            .post(&url, json_headers(), body.clone())
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(receiver.seen.recv().await.unwrap().body, body);
        // Give the finished connection a moment to return to the pool.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.accepted(), 1);
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<Incoming>| async {
                    let response = hyper::Response::builder()
                        .status(307)
                        .header("location", "/elsewhere")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    Ok::<_, hyper::Error>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    let response = client(true)
        .post(
            &Url::parse(&format!("http://{addr}/")).unwrap(),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 307);
    assert_eq!(response.headers["location"], "/elsewhere");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    server.abort();
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it.
struct TestPki {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hookshape test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

#[tokio::test]
async fn https_succeeds_with_the_extra_root_and_fails_without() {
    let pki = test_pki();
    let mut receiver =
        Receiver::start(Bytes::from_static(b"secure"), Some(pki.acceptor.clone())).await;

    let trusting = HttpClient::new(ClientOptions {
        timeout: Duration::from_secs(5),
        allow_private_targets: true,
        extra_roots_pem: Some(pki.ca_pem.clone().into_bytes()),
        ..ClientOptions::default()
    })
    .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let response = trusting
            .post(
                &receiver.url("https", host),
                json_headers(),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(response.status, 200, "{host}");
        assert_eq!(&response.body[..], b"secure");
        assert_eq!(&receiver.seen.recv().await.unwrap().body[..], b"{}");
    }

    let err = client(true)
        .post(
            &receiver.url("https", "127.0.0.1"),
            json_headers(),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap_err();
    match err {
        SendError::Tls(message) => assert!(message.contains("UnknownIssuer"), "{message}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn bad_extra_roots_are_rejected() {
    let options = |pem: &[u8]| ClientOptions {
        extra_roots_pem: Some(pem.to_vec()),
        ..ClientOptions::default()
    };
    assert!(matches!(
        HttpClient::new(options(b"not a pem file")),
        Err(ClientError::NoRootsInPem)
    ));
    let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        HttpClient::new(options(garbage)),
        Err(ClientError::BadRootPem(_))
    ));
    assert!(matches!(
        HttpClient::new(ClientOptions {
            user_agent: "bad\nagent".to_owned(),
            ..ClientOptions::default()
        }),
        Err(ClientError::BadUserAgent(_))
    ));
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers, now)
    };
    assert_eq!(with("120"), Some(Duration::from_secs(120)));
    assert_eq!(with(" 0 "), Some(Duration::ZERO));
    let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
    assert_eq!(with(&later), Some(Duration::from_secs(90)));
    let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
    assert_eq!(with(&earlier), Some(Duration::ZERO));
    assert_eq!(with("soon"), None);
    assert_eq!(with("-5"), None);
    assert_eq!(with("1.5"), None);
    assert_eq!(retry_after(&HeaderMap::new(), now), None);
}
