//! A small fault-injecting HTTP proxy between the exporter and moto_server.
//! It forwards every request, except the FilterLogEvents requests its plan
//! picks: those get a ThrottlingException (HTTP 400, the awsJson error shape
//! with `x-amzn-errortype`), a ServiceUnavailableException (503), a bare 500,
//! or a delay before forwarding. It counts what it injected.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What to do with the n-th FilterLogEvents request (n from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Forward,
    Throttle,
    ServiceUnavailable,
    InternalError,
    Delay(Duration),
}

pub type Plan = Arc<dyn Fn(u64) -> Fault + Send + Sync>;

#[derive(Debug, Default)]
pub struct Stats {
    pub filter_requests: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub forwarded: AtomicU64,
    /// STS AssumeRole requests seen.
    pub assume_role: AtomicU64,
    /// The access key id that signed the last FilterLogEvents request.
    pub last_filter_access_key: std::sync::Mutex<String>,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

pub struct FaultProxy {
    pub endpoint: String,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: &str, plan: Plan) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let stats = Arc::new(Stats::default());
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client = reqwest::Client::new();
        let st = stats.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (upstream, client, st, plan) = (upstream.clone(), client.clone(), st.clone(), plan.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (upstream, client, st, plan) = (upstream.clone(), client.clone(), st.clone(), plan.clone());
                        async move { Ok::<_, Infallible>(handle(req, &upstream, &client, &st, &plan).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        FaultProxy { endpoint: format!("http://{addr}"), stats, task }
    }
}

fn error_response(status: u16, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!("{{\"__type\":\"{kind}\",\"message\":\"{message}\"}}");
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.logs/"))
        .header("x-amzn-requestid", "00000000-0000-0000-0000-000000000000")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

async fn handle(
    req: Request<Incoming>,
    upstream: &str,
    client: &reqwest::Client,
    st: &Stats,
    plan: &Plan,
) -> Response<Full<Bytes>> {
    let is_filter = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.ends_with(".FilterLogEvents"));
    if is_filter {
        let key = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("Credential=").nth(1))
            .and_then(|v| v.split('/').next())
            .unwrap_or_default()
            .to_owned();
        *st.last_filter_access_key.lock().expect("lock") = key;
        let n = st.filter_requests.fetch_add(1, Ordering::SeqCst) + 1;
        match plan(n) {
            Fault::Forward => {}
            Fault::Throttle => {
                st.throttled.fetch_add(1, Ordering::SeqCst);
                return error_response(400, "ThrottlingException", "Rate exceeded");
            }
            Fault::ServiceUnavailable => {
                st.server_errors.fetch_add(1, Ordering::SeqCst);
                return error_response(503, "ServiceUnavailableException", "The service cannot complete the request.");
            }
            Fault::InternalError => {
                st.server_errors.fetch_add(1, Ordering::SeqCst);
                return Response::builder().status(500).body(Full::new(Bytes::new())).expect("response");
            }
            Fault::Delay(d) => tokio::time::sleep(d).await,
        }
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Response::builder().status(502).body(Full::new(Bytes::new())).expect("response"),
    };
    if memchr_find(&body, b"Action=AssumeRole") {
        st.assume_role.fetch_add(1, Ordering::SeqCst);
    }
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut fwd = client.request(parts.method.clone(), format!("{upstream}{path}"));
    for (k, v) in parts.headers.iter() {
        if k != "host" && k != "content-length" {
            fwd = fwd.header(k, v);
        }
    }
    match fwd.body(body).send().await {
        Ok(r) => {
            st.forwarded.fetch_add(1, Ordering::SeqCst);
            let mut b = Response::builder().status(r.status().as_u16());
            for (k, v) in r.headers().iter() {
                if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                    b = b.header(k, v);
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            b.body(Full::new(bytes)).expect("response")
        }
        Err(_) => Response::builder().status(502).body(Full::new(Bytes::new())).expect("response"),
    }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
