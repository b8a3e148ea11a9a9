//! A fault-injecting S3 proxy, for tests only: an HTTP/1 proxy on 127.0.0.1 (hyper, on a tokio
//! runtime of its own) in front of a real S3 server (SeaweedFS), scripted per test with
//! [`Rule`]s. A request matching a rule gets the rule's [`Action`] instead of (or besides)
//! being forwarded: an S3 error status (500 InternalError, 503 SlowDown, ...), a delay before
//! the server sees the request or before its answer is passed on, a dropped connection before
//! or after the server applied the request, a listing cut after its first page. Every request is recorded ([`S3Proxy::seen`]), so a test counts the attempts a
//! client made.
//!
//! Requests are forwarded byte for byte with their `Host` header, so the client's SigV4
//! signature (which covers the host, path and query) still holds at the server; that is why
//! a listing is cut by rewriting the server's answer, never the request.
//!
//! ```no_run
//! # use rvmfs_tests::s3_proxy::{Action, Rule, S3Proxy};
//! let proxy = S3Proxy::start("http://127.0.0.1:8333").unwrap();
//! proxy.add(Rule::new(Action::slow_down()).method("PUT").times(3));
//! // point the client at proxy.endpoint ...
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The continuation token of a listing the proxy cut ([`Action::CutListing`]): the request
/// for the next page carries it, and is answered 500 InternalError unless a rule matched it.
pub const CUT_TOKEN: &str = "rvmfs-proxy-cut";

/// What the proxy does with a request a [`Rule`] matched.
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer this status with an S3 error body carrying `code`, without forwarding.
    Status { status: u16, code: &'static str },
    /// Wait this long, then forward: a request the server applies late.
    Delay(Duration),
    /// Forward (the server applies the request at once), then wait this long before
    /// answering: a slow answer.
    DelayAnswer(Duration),
    /// Close the connection without forwarding or answering.
    Drop,
    /// Forward (the server applies the request), then close the connection without passing
    /// the answer on: a lost answer.
    ApplyThenDrop,
    /// Forward a listing and pass on only its first `keep` objects, marked truncated with the
    /// continuation token [`CUT_TOKEN`].
    CutListing { keep: usize },
}

impl Action {
    /// 500 InternalError.
    pub fn internal_error() -> Action {
        Action::Status {
            status: 500,
            code: "InternalError",
        }
    }
    /// 503 ServiceUnavailable.
    pub fn unavailable() -> Action {
        Action::Status {
            status: 503,
            code: "ServiceUnavailable",
        }
    }
    /// 503 SlowDown: S3's throttling answer.
    pub fn slow_down() -> Action {
        Action::Status {
            status: 503,
            code: "SlowDown",
        }
    }
    /// 429 TooManyRequests: throttling as some S3-compatible servers answer it.
    pub fn too_many_requests() -> Action {
        Action::Status {
            status: 429,
            code: "TooManyRequests",
        }
    }
}

/// Which requests get an [`Action`], and how many times.
#[derive(Clone, Debug)]
pub struct Rule {
    method: Option<String>,
    path: Option<String>,
    query: Option<String>,
    times: Option<usize>,
    action: Action,
}

impl Rule {
    /// `action` for every request, every time (narrow it with the other methods).
    pub fn new(action: Action) -> Rule {
        Rule {
            method: None,
            path: None,
            query: None,
            times: None,
            action,
        }
    }
    /// Only requests with this method (`GET`, `PUT`, `DELETE`, `HEAD`).
    pub fn method(mut self, m: &str) -> Rule {
        self.method = Some(m.to_string());
        self
    }
    /// Only requests whose path (`/BUCKET/KEY`) contains `s`.
    pub fn path(mut self, s: &str) -> Rule {
        self.path = Some(s.to_string());
        self
    }
    /// Only requests whose query string contains `s` (`list-type=2`: listings).
    pub fn query(mut self, s: &str) -> Rule {
        self.query = Some(s.to_string());
        self
    }
    /// Only the next `n` matching requests; then the rule is spent.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    fn matches(&self, r: &Seen) -> bool {
        self.times != Some(0)
            && self.method.as_ref().is_none_or(|m| *m == r.method)
            && self
                .path
                .as_ref()
                .is_none_or(|p| r.path.contains(p.as_str()))
            && self
                .query
                .as_ref()
                .is_none_or(|q| r.query.contains(q.as_str()))
    }
}

/// One request the proxy saw, and what it did with it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    /// When it arrived.
    pub at: Instant,
    /// The action applied, `None` when it was forwarded untouched.
    pub action: Option<Action>,
}

#[derive(Default)]
struct Script {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// A running proxy; stopped (its runtime and connections dropped) on drop.
pub struct S3Proxy {
    /// `http://127.0.0.1:PORT`: the endpoint to give the client instead of the server's.
    pub endpoint: String,
    script: Arc<Mutex<Script>>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn lock(s: &Mutex<Script>) -> MutexGuard<'_, Script> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl S3Proxy {
    /// Start a proxy on a free loopback port in front of `upstream` (`http://HOST:PORT`).
    pub fn start(upstream: &str) -> std::io::Result<S3Proxy> {
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let addr: SocketAddr = upstream
            .strip_prefix("http://")
            .ok_or_else(|| bad(format!("not an http:// endpoint: {upstream}")))?
            .trim_end_matches('/')
            .parse()
            .map_err(|e| bad(format!("{upstream}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("s3-proxy")
            .enable_all()
            .build()?;
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", std_listener.local_addr()?);
        let script = Arc::new(Mutex::new(Script::default()));
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        runtime.spawn(accept_loop(listener, addr, script.clone()));
        Ok(S3Proxy {
            endpoint,
            script,
            runtime: Some(runtime),
        })
    }

    /// Add a rule after those already there (the first matching rule applies).
    pub fn add(&self, rule: Rule) {
        lock(&self.script).rules.push(rule);
    }

    /// Drop every rule: forward everything from now on.
    pub fn clear(&self) {
        lock(&self.script).rules.clear();
    }

    /// Every request seen so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.script).seen.clone()
    }

    /// Requests seen with `method` whose path contains `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        lock(&self.script)
            .seen
            .iter()
            .filter(|s| s.method == method && s.path.contains(path))
            .count()
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Record the request and pick its action (spending one use of the rule).
fn decide(script: &Mutex<Script>, mut seen: Seen) -> Option<Action> {
    let mut s = lock(script);
    let rule = s.rules.iter_mut().find(|r| r.matches(&seen));
    seen.action = match rule {
        Some(r) => {
            r.times = r.times.map(|n| n - 1);
            Some(r.action.clone())
        }
        None if seen.query.contains(CUT_TOKEN) => Some(Action::internal_error()),
        None => None,
    };
    let action = seen.action.clone();
    s.seen.push(seen);
    action
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    upstream: SocketAddr,
    script: Arc<Mutex<Script>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let script = script.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, upstream, script.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// A service error: hyper closes the connection without an answer.
#[derive(Debug)]
struct Dropped(String);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection dropped: {}", self.0)
    }
}

impl std::error::Error for Dropped {}

type Answer = Result<Response<Full<Bytes>>, Dropped>;

/// A whole answer of the server: head and body.
type Whole = (hyper::http::response::Parts, Bytes);

fn answer((parts, body): Whole) -> Response<Full<Bytes>> {
    Response::from_parts(parts, Full::new(body))
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    script: Arc<Mutex<Script>>,
) -> Answer {
    let seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        at: Instant::now(),
        action: None,
    };
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| Dropped(format!("reading the request: {e}")))?
        .to_bytes();
    let req = Request::from_parts(parts, Full::new(body));
    match decide(&script, seen) {
        None => forward(upstream, req).await.map(answer),
        Some(Action::Status { status, code }) => Ok(s3_error(status, code)),
        Some(Action::Delay(d)) => {
            // In a task of its own: the request reaches the server even if the client has
            // given up and closed the connection meanwhile (as a request stuck in a queue).
            let late = tokio::spawn(async move {
                tokio::time::sleep(d).await;
                forward(upstream, req).await
            });
            match late.await {
                Ok(r) => r.map(answer),
                Err(e) => Err(Dropped(format!("delayed request: {e}"))),
            }
        }
        Some(Action::DelayAnswer(d)) => {
            let whole = forward(upstream, req).await?;
            tokio::time::sleep(d).await;
            Ok(answer(whole))
        }
        Some(Action::Drop) => Err(Dropped("injected, request not forwarded".into())),
        Some(Action::ApplyThenDrop) => {
            let (parts, _) = forward(upstream, req).await?;
            Err(Dropped(format!(
                "injected, after the server answered {}",
                parts.status
            )))
        }
        Some(Action::CutListing { keep }) => {
            let whole = forward(upstream, req).await?;
            Ok(answer(cut_listing(whole, keep)))
        }
    }
}

/// Send `req` to the server on a new connection; its whole answer.
async fn forward(upstream: SocketAddr, req: Request<Full<Bytes>>) -> Result<Whole, Dropped> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Dropped(format!("{what}: {e}"));
    let stream = tokio::net::TcpStream::connect(upstream)
        .await
        .map_err(|e| fail("connecting to the server", &e))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail("handshake", &e))?;
    tokio::spawn(conn);
    let r = send
        .send_request(req)
        .await
        .map_err(|e| fail("forwarding", &e))?;
    let (parts, body) = r.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| fail("reading the answer", &e))?
        .to_bytes();
    Ok((parts, body))
}

/// An S3 error answer: `status` with `<Error><Code>code</Code>…</Error>`.
fn s3_error(status: u16, code: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message></Error>"
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    r
}

/// Keep the first `keep` `<Contents>` of a ListObjectsV2 answer, marked truncated with
/// [`CUT_TOKEN`] as the next page's token. Any other answer passes unchanged.
fn cut_listing((mut parts, body): Whole, keep: usize) -> Whole {
    let xml = match std::str::from_utf8(&body) {
        Ok(x) if parts.status == StatusCode::OK && x.contains("<ListBucketResult") => x,
        _ => return (parts, body),
    };
    let cut = cut_xml(xml, keep);
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    (parts, Bytes::from(cut))
}

/// The text surgery of [`cut_listing`]: the `<Contents>` elements past the first `keep`
/// removed, `IsTruncated` true, `NextContinuationToken` [`CUT_TOKEN`].
pub fn cut_xml(xml: &str, keep: usize) -> String {
    const OPEN: &str = "<Contents>";
    const CLOSE: &str = "</Contents>";
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    let mut kept = 0;
    while let Some(start) = rest.find(OPEN) {
        let Some(len) = rest[start..].find(CLOSE).map(|e| e + CLOSE.len()) else {
            break;
        };
        out.push_str(&rest[..start]);
        if kept < keep {
            out.push_str(&rest[start..start + len]);
            kept += 1;
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    let out = drop_element(&out, "NextContinuationToken");
    let out = drop_element(&out, "IsTruncated");
    let mark = format!(
        "<IsTruncated>true</IsTruncated><NextContinuationToken>{CUT_TOKEN}</NextContinuationToken></ListBucketResult>"
    );
    out.replacen("</ListBucketResult>", &mark, 1)
}

/// `xml` without its first `<name>…</name>` element.
fn drop_element(xml: &str, name: &str) -> String {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    match (xml.find(&open), xml.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{}", &xml[..a], &xml[b + close.len()..]),
        _ => xml.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_cut_to_its_first_objects_and_marked_truncated() {
        let xml = "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name><KeyCount>3</KeyCount>\
                   <IsTruncated>false</IsTruncated><Contents><Key>a</Key></Contents>\
                   <Contents><Key>b</Key></Contents><Contents><Key>c</Key></Contents>\
                   </ListBucketResult>";
        let cut = cut_xml(xml, 1);
        assert!(cut.contains("<Key>a</Key>"), "{cut}");
        assert!(
            !cut.contains("<Key>b</Key>") && !cut.contains("<Key>c</Key>"),
            "{cut}"
        );
        assert!(!cut.contains("<IsTruncated>false"), "{cut}");
        assert!(
            cut.ends_with(&format!(
                "<IsTruncated>true</IsTruncated><NextContinuationToken>{CUT_TOKEN}</NextContinuationToken></ListBucketResult>"
            )),
            "{cut}"
        );
    }

    #[test]
    fn rules_match_by_method_path_and_query_and_are_spent() {
        let script = Mutex::new(Script::default());
        let seen = |m: &str, p: &str, q: &str| Seen {
            method: m.into(),
            path: p.into(),
            query: q.into(),
            at: Instant::now(),
            action: None,
        };
        lock(&script).rules.push(
            Rule::new(Action::slow_down())
                .method("PUT")
                .path("/lease")
                .times(2),
        );
        lock(&script)
            .rules
            .push(Rule::new(Action::Drop).query("list-type=2"));
        let is_status = |a: Option<Action>| matches!(a, Some(Action::Status { status: 503, .. }));
        assert!(decide(&script, seen("GET", "/b/img/lease", "")).is_none());
        assert!(is_status(decide(&script, seen("PUT", "/b/img/lease", ""))));
        assert!(is_status(decide(&script, seen("PUT", "/b/img/lease", ""))));
        assert!(
            decide(&script, seen("PUT", "/b/img/lease", "")).is_none(),
            "spent"
        );
        assert!(matches!(
            decide(&script, seen("GET", "/b", "list-type=2&prefix=img")),
            Some(Action::Drop)
        ));
        assert!(
            matches!(
                decide(
                    &script,
                    seen(
                        "GET",
                        "/b",
                        &format!("continuation-token={CUT_TOKEN}&list-type=2")
                    )
                ),
                Some(Action::Drop)
            ),
            "the first matching rule wins over the cut listing's default"
        );
        lock(&script).rules.clear();
        assert!(matches!(
            decide(
                &script,
                seen("GET", "/b", &format!("continuation-token={CUT_TOKEN}"))
            ),
            Some(Action::Status { status: 500, .. })
        ));
        assert_eq!(lock(&script).seen.len(), 7);
    }
}
