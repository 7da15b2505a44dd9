//! A real moto_server (the AWS mock; `.venv` from scripts/setup-test-deps.sh)
//! on a free loopback port, answering before the test goes on, killed on drop.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{free_port, Proc};
use super::tools::{require, MOTO_SERVER};

/// A running moto_server.
pub struct MotoServer {
    pub proc: Proc,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts moto_server if it is installed; None (the test skips) if not
    /// (see [`require`]).
    pub fn require() -> Option<MotoServer> {
        Some(MotoServer::start(&require(&MOTO_SERVER)?))
    }

    /// moto_server at `bin`, listening (60 s; up to three ports tried, in
    /// case another process takes the free port first).
    pub fn start(bin: &Path) -> MotoServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut last_err = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            let mut proc = Proc::spawn("moto_server", cmd, dir.path().join(format!("moto_server-{attempt}.log")));
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Some(status) = proc.exited() {
                    last_err = format!("moto_server exited with {status} (port {port} taken?)\n{}", proc.log_tail());
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return MotoServer { proc, port, endpoint: format!("http://127.0.0.1:{port}"), _dir: dir };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if last_err.is_empty() {
                last_err = format!("moto_server did not listen within 60 s\n{}", proc.log_tail());
            }
        }
        panic!("cannot start moto_server: {last_err}");
    }
}
