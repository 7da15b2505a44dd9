//! The HTTP server: `--web.telemetry-path` (default `/metrics`, gzip when the
//! scraper accepts it), `/` a landing page, `/-/healthy`, `/-/ready`. It takes
//! a bound listener and a shutdown token, so tests bind `127.0.0.1:0`.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{encode, Readiness};

/// What the server serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub registry: Registry,
    pub telemetry_path: String,
    pub readiness: Readiness,
    /// One line for the landing page (`demo`, `live: 3 log groups`, ...).
    pub mode: String,
}

/// Serves until `shutdown` is cancelled; connections in flight are finished.
pub async fn serve(listener: TcpListener, config: ServerConfig, shutdown: CancellationToken) {
    let config = Arc::new(config);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "Accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let config = config.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| {
                let config = config.clone();
                async move { Ok::<_, Infallible>(handle(&config, req)) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "Connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

fn handle(config: &ServerConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
    }
    let path = req.uri().path();
    if path == config.telemetry_path {
        let gzip = req
            .headers()
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        return metrics(config, gzip);
    }
    match path {
        "/" => landing(config),
        "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" if config.readiness.is_ready() => text(StatusCode::OK, "Ready\n"),
        "/-/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "Not ready: not every log group has been polled yet\n"),
        _ => text(StatusCode::NOT_FOUND, "Not found\n"),
    }
}

fn metrics(config: &ServerConfig, gzip: bool) -> Response<Full<Bytes>> {
    let body = encode(&config.registry);
    let mut resp = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
        match enc.write_all(body.as_bytes()).and_then(|_| enc.finish()) {
            Ok(z) => {
                let mut r = Response::new(Full::new(Bytes::from(z)));
                r.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            Err(_) => Response::new(Full::new(Bytes::from(body))),
        }
    } else {
        Response::new(Full::new(Bytes::from(body)))
    };
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT));
    resp
}

fn landing(config: &ServerConfig) -> Response<Full<Bytes>> {
    let path = html_escape(&config.telemetry_path);
    let mode = html_escape(&config.mode);
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>VPC Flow Exporter</title></head>\n<body>\n<h1>VPC Flow Exporter</h1>\n\
         <p>Version {version}. Mode: {mode}.</p>\n<ul>\n<li><a href=\"{path}\">Metrics</a></li>\n\
         <li><a href=\"/-/healthy\">Health</a></li>\n<li><a href=\"/-/ready\">Readiness</a></li>\n</ul>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
