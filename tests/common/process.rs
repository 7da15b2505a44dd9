//! Child processes of a test: started with their output in a log file, killed
//! and reaped when dropped (a failed assertion leaves no process behind),
//! signalled without an external `kill`; and free loopback ports.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use rustix::process::Signal;

/// A loopback port nobody listens on (the OS picks it; free until someone binds it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("addr").port()
}

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// A running child process, killed and reaped on drop, its stdout and stderr
/// in the file `log`.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
    /// The folder of `log` when the process has one of its own.
    _dir: Option<tempfile::TempDir>,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout and stderr into `log` (created).
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Proc { name: name.to_owned(), child, log, _dir: None }
    }

    /// [`Proc::spawn`] with the log in a temporary folder of its own
    /// (`<name>.log`), removed after the process is killed.
    pub fn spawn_logged(name: &str, cmd: Command) -> Proc {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut p = Proc::spawn(name, cmd, dir.path().join(format!("{name}.log")));
        p._dir = Some(dir);
        p
    }

    /// `program args` run in `dir`, logging to `dir/<name>.log`.
    pub fn start(name: &str, program: &Path, args: &[String], dir: &Path) -> Proc {
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(dir);
        Proc::spawn(name, cmd, dir.join(format!("{name}.log")))
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `sig` (e.g. `Signal::TERM`, `Signal::HUP`); panics if it cannot.
    pub fn signal(&self, sig: Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), sig)
            .unwrap_or_else(|e| panic!("signal {sig:?} to {}: {e}", self.name));
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything it wrote so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its last 40 lines of output, under a header naming it.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!("--- last lines of {} log ({}) ---\n{}", self.name, self.log.display(), lines[from..].join("\n"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `url` answers 2xx (90 s), failing early, with its log, if the
/// process exits.
pub fn wait_ready(http: &reqwest::blocking::Client, proc_: &mut Proc, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(resp) = http.get(url).send() {
            if resp.status().is_success() {
                return;
            }
        }
        if let Some(status) = proc_.exited() {
            panic!("{} exited ({status}) before {url} was ready\n{}", proc_.name, proc_.log_tail());
        }
        if Instant::now() > deadline {
            panic!("{} not ready at {url} after 90 s\n{}", proc_.name, proc_.log_tail());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
