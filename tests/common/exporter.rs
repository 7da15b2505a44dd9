//! The real `vpc-flow-exporter` binary in `demo` mode on a free loopback
//! port: started, waited for, scraped, signalled, killed on drop.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::expo;
use super::process::{free_port, Proc, Signal};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_vpc-flow-exporter");

/// Runs `cmd` (e.g. `Command::new(BIN)` with its arguments) to its end:
/// `stdin` written to it then closed (closed at once when None), its stdout
/// and stderr collected.
pub fn run_with_stdin(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    {
        let mut sin = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            sin.write_all(bytes).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait")
}

/// A running exporter (`demo`), its output in a log file of its own.
pub struct Exporter {
    pub proc: Proc,
    pub port: u16,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Exporter {
    /// `vpc-flow-exporter demo --web.listen-address 127.0.0.1:<free port> <args>`,
    /// answering HTTP.
    pub fn demo(args: &[&str]) -> Exporter {
        Exporter::start(Command::new(BIN), &[], args)
    }

    /// Through `cmd` (the binary, or a shell that execs it): `before`, then
    /// `demo --web.listen-address 127.0.0.1:<free port>`, then `after`; waits
    /// until `/-/healthy` answers (20 s).
    pub fn start(cmd: Command, before: &[&str], after: &[&str]) -> Exporter {
        let mut e = Exporter::spawn(cmd, before, after);
        e.wait_answering();
        e
    }

    /// [`Exporter::start`] without waiting (for a listener the test checks itself).
    pub fn spawn(mut cmd: Command, before: &[&str], after: &[&str]) -> Exporter {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        cmd.args(before).args(["demo", "--web.listen-address", &addr]).args(after);
        let proc = Proc::spawn_logged("exporter", cmd);
        Exporter { proc, port, base: format!("http://{addr}"), addr }
    }

    /// Waits until `/-/healthy` gives any HTTP answer (20 s); fails early,
    /// with the log, if the process exits.
    pub fn wait_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::blocking::get(self.url("/-/healthy")).is_err() {
            if let Some(status) = self.proc.exited() {
                panic!("the exporter exited ({status}) before answering\n{}", self.proc.log_tail());
            }
            assert!(Instant::now() < deadline, "exporter did not start on {}\n{}", self.addr, self.proc.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /metrics` (5 s timeout), or None if it did not answer.
    pub fn scrape(&self) -> Option<String> {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
        client.get(self.url("/metrics")).send().ok()?.text().ok()
    }

    /// The value of one series of a fresh scrape ([`expo::sample`]).
    pub fn metric(&self, series: &str) -> Option<f64> {
        expo::sample(&self.scrape()?, series)
    }

    /// Scrapes until `ok` holds on the exposition; fails with the last one
    /// after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let body = self.scrape().unwrap_or_default();
            if ok(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{body}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn signal(&self, sig: Signal) {
        self.proc.signal(sig);
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.proc.log()
    }
}
