//! The external tools some tests need (Prometheus, promtool, Alertmanager,
//! moto_server), where they are looked up, and what a test does without one.
//!
//! Lookup, in order: the tool's own override variable (`PROMETHEUS_BIN`, ...);
//! then the directories of `VPC_FLOW_EXPORTER_TOOL_PATH` if it is set (only
//! those: a way to hide installed tools), else `PATH`, the repository's
//! `.venv/bin` (where `scripts/setup-test-deps.sh` puts moto_server) and
//! `/usr/sbin` (Debian's nginx, which a user's `PATH` may lack).
//!
//! Missing: the test prints one line `skipped: needs <tool> (install: ...)`
//! and returns (it passes, doing nothing), unless
//! `VPC_FLOW_EXPORTER_REQUIRE_TOOLS` is set (to anything but `0`), as
//! `scripts/test.sh` does: then the same message fails the test.

use std::io::Write;
use std::path::PathBuf;

/// Set (not `0`): a missing tool fails the test instead of skipping it.
pub const REQUIRE_VAR: &str = "VPC_FLOW_EXPORTER_REQUIRE_TOOLS";
/// Set: the only directories searched for tools (instead of PATH, .venv/bin and /usr/sbin).
pub const TOOL_PATH_VAR: &str = "VPC_FLOW_EXPORTER_TOOL_PATH";
/// What installs every tool.
pub const INSTALL: &str = "scripts/setup-test-deps.sh";

/// An external program a test runs.
pub struct Tool {
    /// As named in messages.
    pub name: &'static str,
    /// Executable names tried in each directory, in order.
    pub executables: &'static [&'static str],
    /// A variable holding the path of the executable, which wins over the lookup.
    pub env_var: &'static str,
    /// Where it comes from, for the message.
    pub package: &'static str,
}

pub const PROMETHEUS: Tool = Tool {
    name: "prometheus",
    executables: &["prometheus"],
    env_var: "PROMETHEUS_BIN",
    package: "Debian package prometheus",
};

pub const PROMTOOL: Tool = Tool {
    name: "promtool",
    executables: &["promtool"],
    env_var: "PROMTOOL_BIN",
    package: "Debian package prometheus",
};

pub const ALERTMANAGER: Tool = Tool {
    name: "prometheus-alertmanager",
    executables: &["prometheus-alertmanager", "alertmanager"],
    env_var: "ALERTMANAGER_BIN",
    package: "Debian package prometheus-alertmanager",
};

pub const MOTO_SERVER: Tool = Tool {
    name: "moto_server",
    executables: &["moto_server"],
    env_var: "MOTO_SERVER_BIN",
    package: "moto[server] in .venv",
};

/// Where `tool` is, or why it was not found.
pub fn locate(tool: &Tool) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(tool.env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("{}={} is not a file", tool.env_var, p.display())) };
    }
    let dirs: Vec<PathBuf> = match std::env::var_os(TOOL_PATH_VAR) {
        // Empty entries (an empty variable included) name no directory.
        Some(only) => std::env::split_paths(&only).filter(|d| !d.as_os_str().is_empty()).collect(),
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path).chain([super::repo().join(".venv/bin"), PathBuf::from("/usr/sbin")]).collect()
        }
    };
    dirs.iter()
        .flat_map(|d| tool.executables.iter().map(move |e| d.join(e)))
        .find(|p| p.is_file())
        .ok_or_else(|| tool.package.to_string())
}

/// Whether a missing tool fails the test (`VPC_FLOW_EXPORTER_REQUIRE_TOOLS`).
pub fn tools_required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The path of `tool`, or `None` after printing the skip line (the test then
/// returns); with `VPC_FLOW_EXPORTER_REQUIRE_TOOLS` set, a missing tool panics.
///
/// `let Some(promtool) = common::require(&PROMTOOL) else { return };`
pub fn require(tool: &Tool) -> Option<PathBuf> {
    require_all([tool]).map(|[p]| p)
}

/// [`require`] for several tools at once: one line names every missing one.
pub fn require_all<const N: usize>(tools: [&Tool; N]) -> Option<[PathBuf; N]> {
    let found = tools.map(locate);
    let missing: Vec<(&str, &String)> =
        tools.iter().zip(&found).filter_map(|(t, r)| r.as_ref().err().map(|why| (t.name, why))).collect();
    if missing.is_empty() {
        return Some(found.map(|r| r.unwrap_or_default()));
    }
    let names: Vec<&str> = missing.iter().map(|m| m.0).collect();
    let mut hows: Vec<&str> = missing.iter().map(|m| m.1.as_str()).collect();
    hows.dedup();
    let line = format!("needs {} (install: {INSTALL}; {})", names.join(", "), hows.join("; "));
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    if tools_required() {
        panic!("{test} {line}: {REQUIRE_VAR} is set, so a missing tool fails instead of skipping");
    }
    // Straight to stderr, past the test harness's capture, so a plain
    // `cargo test` shows what it did not run.
    // One write, so that the line is not split by the harness's own output.
    let _ = std::io::stderr().write_all(format!("skipped: {line} [{test}]\n").as_bytes());
    None
}
