//! `--web.listen-address` (and `firehose.listen_address`): its form checked
//! before anything starts, its host name resolved by `--config.check` and the
//! start, and the socket bound (`:port` as one dual-stack socket, IPv4 only
//! where IPv6 is missing). Errors name the flag or key.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

/// The flag of the metrics listener, named in its errors.
pub const WEB_LISTEN_ADDRESS: &str = "--web.listen-address";

/// Why a listen address cannot be used; each message names the flag or key.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{key}: invalid address {addr:?} (expected host:port, [IPv6]:port or :port)")]
    Invalid { key: &'static str, addr: String },
    #[error("{key}: cannot resolve {addr:?}")]
    Resolve {
        key: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {addr:?} resolves to no address")]
    NoAddress { key: &'static str, addr: String },
    #[error("{key}: cannot listen on {shown}")]
    Bind {
        key: &'static str,
        shown: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: cannot listen on {shown} ({addr})")]
    BindResolved {
        key: &'static str,
        shown: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A `--web.listen-address`, checked for form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `:port`: every address of both families.
    Any(u16),
    /// `host:port`, `ip:port` or `[ipv6]:port`, resolved when binding.
    Host(String),
}

impl Listen {
    /// Checks the form of `s` (no lookup), for `--web.listen-address`.
    pub fn parse(s: &str) -> Result<Listen, ListenError> {
        Listen::parse_as(WEB_LISTEN_ADDRESS, s)
    }

    /// Checks the form of `s` (no lookup); errors name `key`.
    pub fn parse_as(key: &'static str, s: &str) -> Result<Listen, ListenError> {
        let bad = || ListenError::Invalid { key, addr: s.to_owned() };
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Ok(Listen::Any(port));
        }
        let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
        if !bracketed && (host.contains(':') || host.contains('[') || host.contains(']')) {
            return Err(bad());
        }
        if bracketed && host[1..host.len() - 1].parse::<Ipv6Addr>().is_err() {
            return Err(bad());
        }
        Ok(Listen::Host(s.to_owned()))
    }

    /// Checks that a host name resolves (what `--config.check` and the start
    /// check before listening).
    pub async fn check(&self) -> Result<(), ListenError> {
        self.check_as(WEB_LISTEN_ADDRESS).await
    }

    /// [`Listen::check`] naming `key`.
    pub async fn check_as(&self, key: &'static str) -> Result<(), ListenError> {
        match self {
            Listen::Any(_) => Ok(()),
            Listen::Host(s) => resolve(key, s).await.map(drop),
        }
    }

    /// Binds the socket; `shown` is the address as the user wrote it.
    pub async fn bind(&self, shown: &str) -> Result<TcpListener, ListenError> {
        self.bind_as(WEB_LISTEN_ADDRESS, shown).await
    }

    /// [`Listen::bind`] naming `key`.
    pub async fn bind_as(&self, key: &'static str, shown: &str) -> Result<TcpListener, ListenError> {
        let bind_err = |source| ListenError::Bind { key, shown: shown.to_owned(), source };
        match self {
            Listen::Any(port) => match bind_dual_stack(*port) {
                Ok(l) => Ok(l),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied) => {
                    Err(bind_err(e))
                }
                Err(e) => {
                    tracing::info!(target: super::BIN_TARGET, error = %e, "IPv6 is not available; listening on IPv4 only");
                    TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port))).await.map_err(bind_err)
                }
            },
            Listen::Host(s) => {
                let mut last = None;
                for addr in resolve(key, s).await? {
                    match TcpListener::bind(addr).await {
                        Ok(l) => return Ok(l),
                        Err(e) => last = Some((addr, e)),
                    }
                }
                Err(match last {
                    Some((addr, source)) => ListenError::BindResolved { key, shown: shown.to_owned(), addr, source },
                    None => ListenError::NoAddress { key, addr: shown.to_owned() },
                })
            }
        }
    }
}

/// The addresses a `host:port` stands for.
async fn resolve(key: &'static str, s: &str) -> Result<Vec<SocketAddr>, ListenError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(s)
        .await
        .map_err(|source| ListenError::Resolve { key, addr: s.to_owned(), source })?
        .collect();
    if addrs.is_empty() {
        return Err(ListenError::NoAddress { key, addr: s.to_owned() });
    }
    Ok(addrs)
}

/// `:port`: one IPv6 socket that takes IPv4 too (IPV6_V6ONLY off).
fn bind_dual_stack(port: u16) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v6()?;
    rustix::net::sockopt::set_ipv6_v6only(&socket, false)?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_checked_before_any_lookup() {
        assert_eq!(Listen::parse(":9100").unwrap(), Listen::Any(9100));
        assert_eq!(Listen::parse("localhost:1").unwrap(), Listen::Host("localhost:1".to_owned()));
        assert_eq!(Listen::parse("[::1]:1").unwrap(), Listen::Host("[::1]:1".to_owned()));
        for bad in ["nonsense", ":x", "::1:80", "[zz]:80", "[]:80", "a]:1", ":70000"] {
            let e = Listen::parse(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("--web.listen-address: invalid address {bad:?} (expected host:port, [IPv6]:port or :port)")
            );
        }
    }

    #[tokio::test]
    async fn a_port_in_use_is_named_with_the_address_as_written() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shown = taken.local_addr().unwrap().to_string();
        let e = Listen::parse(&shown).unwrap().bind(&shown).await.unwrap_err();
        assert!(e.to_string().starts_with(&format!("--web.listen-address: cannot listen on {shown} (")), "{e}");
    }
}
