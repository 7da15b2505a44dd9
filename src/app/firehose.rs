//! The `firehose:` section as the builder sets it up: its listen address
//! checked (form, host name, not the metrics listener's) by `--config.check`
//! and the start, its socket bound at the start, and its receiver counting
//! into the pipeline behind the metrics server's connection handling (TLS
//! from `--web.config.file`, the connection cap and deadlines; basic auth
//! does not apply: Firehose authenticates with its access key).

use std::net::SocketAddr;

use prometheus::Registry;
use tokio::net::TcpListener;

use super::error::AppError;
use super::ingest::Ingest;
use super::listen::Listen;
use super::{WebArgs, BIN_TARGET};
use crate::config::Config;
use crate::expose::server::Connections;
use crate::expose::{ServerLimits, WebConfigHandle};
use crate::source::firehose::Receiver;

/// The key its listen errors name.
pub(crate) const LISTEN_KEY: &str = "firehose.listen_address";

/// The prefix of the Firehose listener's connection metrics.
const METRIC_PREFIX: &str = "vpc_flow_exporter_firehose_http";

/// The receiver, its bound socket and its connection handling, not serving yet.
pub(crate) struct FirehoseListener {
    pub(crate) listener: TcpListener,
    pub(crate) addr: SocketAddr,
    pub(crate) receiver: Receiver,
    pub(crate) connections: Connections,
}

/// `--config.check`'s and the start's check of the listen address.
pub(crate) async fn check(config: &Config, path: Option<&std::path::Path>, web: &WebArgs) -> Result<(), AppError> {
    let Some(fh) = &config.firehose else { return Ok(()) };
    let listen = Listen::parse_as(LISTEN_KEY, &fh.listen_address)?;
    if fh.listen_address == web.listen_address && !fh.listen_address.ends_with(":0") {
        let message = format!("{LISTEN_KEY}: must differ from --web.listen-address ({})", web.listen_address);
        return Err(AppError::in_config(path, message));
    }
    listen.check_as(LISTEN_KEY).await?;
    Ok(())
}

/// Binds the listener and builds the receiver (its metrics registered).
pub(crate) async fn start(
    config: &Config,
    ingest: &Ingest,
    registry: &Registry,
    web: WebConfigHandle,
    limits: ServerLimits,
) -> Result<Option<FirehoseListener>, AppError> {
    let Some(fh) = &config.firehose else { return Ok(None) };
    let groups = config.cloudwatch.as_ref().map_or(&[][..], |cw| cw.log_groups.as_slice());
    let receiver = ingest.firehose_receiver(fh, groups, registry).map_err(|e| AppError::Source(e.into()))?;
    let listener = Listen::parse_as(LISTEN_KEY, &fh.listen_address)?.bind_as(LISTEN_KEY, &fh.listen_address).await?;
    let addr = listener.local_addr().map_err(|source| super::listen::ListenError::Bind {
        key: LISTEN_KEY,
        shown: fh.listen_address.clone(),
        source,
    })?;
    let tls = web.current().tls().is_some();
    tracing::info!(target: BIN_TARGET, address = %addr, tls, keys = fh.access_keys.len(), "Firehose receiver listening");
    if fh.access_keys.is_empty() {
        tracing::warn!(target: BIN_TARGET, "Firehose receiver accepts requests without an access key (allow_unauthenticated: true)");
    }
    let limits = ServerLimits { request_timeout: fh.request_timeout, ..limits };
    let connections = Connections { registry: registry.clone(), metric_prefix: METRIC_PREFIX, web, limits };
    Ok(Some(FirehoseListener { listener, addr, receiver, connections }))
}
