//! The state file: what each log group's poller needs to go on after a restart
//! without counting anything twice — the horizon, the remembered event keys,
//! and the scan in progress (its range, start and the next page's token).
//!
//! It is JSON (readable with `jq` when debugging), written atomically: a
//! temporary file with a random name, created exclusively (never through a
//! symbolic link) with mode 0600 in the same folder, fsync, rename over the
//! old one, fsync of the folder. A missing file is a first start; an
//! unreadable, corrupt, oversized or non-regular one (a symbolic link, a FIFO)
//! is a start-up error that names the file — never a silent reset, which would
//! count the lookback window again. Times in the future are clamped when the
//! file is read ([`clamp_future`]), so that a file cannot blind the poller.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Format version of the file.
pub const VERSION: u32 = 1;

/// Why the state file cannot be read, used or written. Every message names
/// the file (and, on reading, the `cloudwatch.state_file` key); the cause,
/// when there is one, is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cloudwatch.state_file: cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "cloudwatch.state_file: {path} is a symbolic link; set state_file to the real path (the state file must be a regular file)"
    )]
    Symlink { path: PathBuf },
    #[error("cloudwatch.state_file: {path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error(
        "cloudwatch.state_file: {path} is larger than {max} bytes ({len} bytes), more than this program ever writes: not a vpc-flow-exporter state file; remove it to start over from start_from"
    )]
    TooLarge { path: PathBuf, max: u64, len: u64 },
    #[error("cloudwatch.state_file: {path} changed while it was read; try again")]
    Changed { path: PathBuf },
    #[error(
        "cloudwatch.state_file: {path} is corrupt (not a vpc-flow-exporter state file); fix or remove it to start over from start_from"
    )]
    NotStateFile { path: PathBuf, source: serde_json::Error },
    #[error("cloudwatch.state_file: {path} has format version {found}, this program reads version {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cloudwatch.state_file: {path} is corrupt: log group {group:?}")]
    BadKeys { path: PathBuf, group: String, source: KeysError },
    #[error(
        "cloudwatch.state_file: {path} is corrupt: log group {group:?}: a page token longer than {MAX_TOKEN_LEN} bytes"
    )]
    LongToken { path: PathBuf, group: String },
    #[error("cloudwatch.state_file: cannot create the folder {dir} of {path}")]
    CreateDir { dir: PathBuf, path: PathBuf, source: std::io::Error },
    #[error("cloudwatch.state_file: cannot write in the folder {dir} of {path}")]
    DirNotWritable { dir: PathBuf, path: PathBuf, source: std::io::Error },
    #[error("cannot encode the checkpoint")]
    Encode(#[source] serde_json::Error),
    #[error("cannot write the state file {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the checkpoint writer stopped")]
    WriterStopped(#[source] tokio::task::JoinError),
}

/// Why the keys of a log group's checkpoint cannot be unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("bucket {bucket_ms}: keys are not 32-digit hex numbers")]
    NotHex { bucket_ms: i64 },
    #[error("bucket {bucket_ms}: bad key")]
    BadKey { bucket_ms: i64, source: std::num::ParseIntError },
}

/// Longest `nextToken` kept (AWS's are a few hundred bytes); a longer one is
/// refused as a bad response, so that the file stays bounded.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Largest state file read for the configured log groups: the keys of the
/// whole dedup budget ([`super::dedup::MAX_DEDUP_KEYS`], 32 hex digits plus
/// bucket overhead each, at worst one key a bucket), per group its name
/// (escaped), a token and the times, and 8 MiB to spare (groups dropped from
/// the configuration). The writer never writes more: the dedup window's cap
/// bounds the keys, [`MAX_TOKEN_LEN`] the tokens.
pub fn max_file_bytes<'a>(groups: impl IntoIterator<Item = &'a str>) -> u64 {
    let keys = super::dedup::MAX_DEDUP_KEYS as u64 * 96;
    let per_group = |name: &str| (MAX_TOKEN_LEN as u64 + name.len() as u64).saturating_mul(6).saturating_add(4096);
    groups.into_iter().fold((8u64 << 20).saturating_add(keys), |acc, name| acc.saturating_add(per_group(name)))
}

/// How far in the future a time of the file may be (clock steps between
/// hosts, NTP corrections) before it is clamped to now.
pub const FUTURE_TOLERANCE_MS: i64 = 5 * 60_000;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    /// When it was written (epoch ms), for humans.
    pub saved_at_ms: i64,
    pub log_groups: BTreeMap<String, GroupCheckpoint>,
}

/// One log group's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCheckpoint {
    /// The skip horizon (epoch ms): events ingested before it minus the
    /// margin were counted.
    pub horizon_ms: Option<i64>,
    /// Local start of the last complete scan: the next scan reads from it
    /// minus `lookback` (absent: the horizon).
    #[serde(default)]
    pub last_scan_start_ms: Option<i64>,
    /// Newest ingestion time of any event read (CloudWatch's clock).
    #[serde(default)]
    pub newest_ingestion_ms: Option<i64>,
    /// The scan in progress when the file was written.
    pub scan: Option<ScanCheckpoint>,
    /// Remembered event keys, grouped by ingestion-time bucket.
    pub keys: Vec<KeyBucket>,
}

/// A scan that had not read its last page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanCheckpoint {
    /// When it began (epoch ms): the horizon once it completes.
    pub started_ms: i64,
    /// Its FilterLogEvents startTime (epoch ms).
    pub start_time_ms: i64,
    /// Token of the next page to read (`None`: the first page).
    pub next_token: Option<String>,
    /// Newest ingestion time read before the scan began (bounds its horizon).
    #[serde(default)]
    pub bound_ms: Option<i64>,
    /// Oldest ingestion time of an event the scan left to the next one
    /// because the dedup window was full (it holds the next horizon back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_from_ms: Option<i64>,
}

/// The keys of one bucket: 32 hex digits each, concatenated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBucket {
    pub bucket_ms: i64,
    pub keys: String,
}

impl GroupCheckpoint {
    /// Packs (bucket, key) pairs into buckets of hex strings.
    pub fn pack_keys(pairs: impl Iterator<Item = (i64, u128)>) -> Vec<KeyBucket> {
        let mut by_bucket: BTreeMap<i64, String> = BTreeMap::new();
        for (b, k) in pairs {
            let s = by_bucket.entry(b).or_default();
            // Writing to a String cannot fail.
            let _ = write!(s, "{k:032x}");
        }
        by_bucket.into_iter().map(|(bucket_ms, keys)| KeyBucket { bucket_ms, keys }).collect()
    }

    /// Unpacks the keys; an error says what is wrong.
    pub fn unpack_keys(&self) -> Result<Vec<(i64, u128)>, KeysError> {
        let mut out = Vec::new();
        for b in &self.keys {
            if b.keys.len() % 32 != 0 || !b.keys.is_ascii() {
                return Err(KeysError::NotHex { bucket_ms: b.bucket_ms });
            }
            for i in (0..b.keys.len()).step_by(32) {
                let k = u128::from_str_radix(&b.keys[i..i + 32], 16)
                    .map_err(|source| KeysError::BadKey { bucket_ms: b.bucket_ms, source })?;
                out.push((b.bucket_ms, k));
            }
        }
        Ok(out)
    }
}

/// Reads the state file: `Ok(None)` if it does not exist. It must be a
/// regular file (not a symbolic link, a FIFO or a device) of at most
/// `max_bytes`.
pub fn load(path: &Path, max_bytes: u64) -> Result<Option<Checkpoint>, CheckpointError> {
    let Some(bytes) = read_regular(path, max_bytes)? else { return Ok(None) };
    let cp: Checkpoint = serde_json::from_slice(&bytes)
        .map_err(|source| CheckpointError::NotStateFile { path: path.to_owned(), source })?;
    if cp.version != VERSION {
        return Err(CheckpointError::Version { path: path.to_owned(), found: cp.version });
    }
    for (name, g) in &cp.log_groups {
        if let Err(source) = g.unpack_keys() {
            return Err(CheckpointError::BadKeys { path: path.to_owned(), group: name.clone(), source });
        }
        if g.scan.as_ref().and_then(|s| s.next_token.as_ref()).is_some_and(|t| t.len() > MAX_TOKEN_LEN) {
            return Err(CheckpointError::LongToken { path: path.to_owned(), group: name.clone() });
        }
    }
    Ok(Some(cp))
}

/// The bytes of the file at `path`, checked to be a regular file of at most
/// `max_bytes` without following a symbolic link or opening a FIFO; `None` if
/// it does not exist.
fn read_regular(path: &Path, max_bytes: u64) -> Result<Option<Vec<u8>>, CheckpointError> {
    let read = |source| CheckpointError::Read { path: path.to_owned(), source };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read(e)),
    };
    if meta.file_type().is_symlink() {
        return Err(CheckpointError::Symlink { path: path.to_owned() });
    }
    if !meta.is_file() {
        return Err(CheckpointError::NotRegular { path: path.to_owned() });
    }
    let too_big = |len: u64| CheckpointError::TooLarge { path: path.to_owned(), max: max_bytes, len };
    if meta.len() > max_bytes {
        return Err(too_big(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(read)?;
    // The path may have been swapped between the check and the open: the
    // file opened must be the one checked.
    let opened = file.metadata().map_err(read)?;
    if !opened.is_file() || !same_file(&meta, &opened) {
        return Err(CheckpointError::Changed { path: path.to_owned() });
    }
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// A time of the state file that lay in the future, clamped to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clamped {
    pub log_group: String,
    /// The field (`horizon_ms`, `scan.started_ms`, `keys`, ...).
    pub field: &'static str,
    pub was_ms: i64,
}

/// Clamps every time of the file that lies more than [`FUTURE_TOLERANCE_MS`]
/// after `now_ms` to `now_ms`, and negative times to 0; drops key buckets in
/// the future (their keys could only hold the dedup budget until then).
/// Without it, a file holding a horizon a year ahead would make the poller
/// skip every event for a year while reporting success. Returns what was
/// changed, for the warning and the metric.
pub fn clamp_future(cp: &mut Checkpoint, now_ms: i64) -> Vec<Clamped> {
    let limit = now_ms.saturating_add(FUTURE_TOLERANCE_MS);
    let mut out = Vec::new();
    for (name, g) in &mut cp.log_groups {
        let mut fix = |field: &'static str, t: &mut i64| {
            if *t > limit || *t < 0 {
                out.push(Clamped { log_group: name.clone(), field, was_ms: *t });
                *t = if *t < 0 { 0 } else { now_ms };
            }
        };
        let opt = |t: &mut Option<i64>, field: &'static str, fix: &mut dyn FnMut(&'static str, &mut i64)| {
            if let Some(t) = t {
                fix(field, t);
            }
        };
        opt(&mut g.horizon_ms, "horizon_ms", &mut fix);
        opt(&mut g.last_scan_start_ms, "last_scan_start_ms", &mut fix);
        opt(&mut g.newest_ingestion_ms, "newest_ingestion_ms", &mut fix);
        if let Some(s) = &mut g.scan {
            fix("scan.started_ms", &mut s.started_ms);
            fix("scan.start_time_ms", &mut s.start_time_ms);
            opt(&mut s.bound_ms, "scan.bound_ms", &mut fix);
            opt(&mut s.deferred_from_ms, "scan.deferred_from_ms", &mut fix);
        }
        if let Some(b) = g.keys.iter().find(|b| b.bucket_ms > limit) {
            out.push(Clamped { log_group: name.clone(), field: "keys", was_ms: b.bucket_ms });
        }
        g.keys.retain(|b| b.bucket_ms <= limit);
    }
    out
}

/// Makes sure at start-up that the state file's folder exists (creating it if
/// needed) and is writable, so that a bad path is found now rather than at
/// the first save. The probe is a temporary file created exclusively (no
/// fixed name that a symbolic link could stand in for).
pub fn check_writable_dir(path: &Path) -> Result<(), CheckpointError> {
    let dir = parent_dir(path);
    if let Err(source) = std::fs::create_dir_all(&dir) {
        return Err(CheckpointError::CreateDir { dir, path: path.to_owned(), source });
    }
    if let Err(source) = tempfile::Builder::new().prefix(".vpc-flow-exporter-probe.").tempfile_in(&dir) {
        return Err(CheckpointError::DirNotWritable { dir, path: path.to_owned(), source });
    }
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Encodes and writes the file atomically (blocking: call from `spawn_blocking`).
pub fn save(path: &Path, cp: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = serde_json::to_vec(cp).map_err(CheckpointError::Encode)?;
    write_atomic(path, &bytes)
}

/// Writes encoded bytes atomically (blocking): a temporary file with a random
/// name created exclusively (`O_EXCL`: never an existing file, never through
/// a symbolic link) with mode 0600 in the same folder, fsync, rename over
/// `path` (which replaces a symbolic link at `path` itself, never its
/// target), fsync of the folder. On error the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = parent_dir(path);
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new().prefix(&format!(".{file_name}.")).suffix(".tmp").tempfile_in(&dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        // Make the rename itself durable; not every platform can open a folder.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|source| CheckpointError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1 << 20;

    fn sample() -> Checkpoint {
        let mut cp = Checkpoint { version: VERSION, saved_at_ms: 5, log_groups: BTreeMap::new() };
        cp.log_groups.insert(
            "/vpc/a".into(),
            GroupCheckpoint {
                horizon_ms: Some(1_000),
                last_scan_start_ms: Some(1_500),
                newest_ingestion_ms: Some(1_900),
                scan: Some(ScanCheckpoint {
                    started_ms: 2_000,
                    start_time_ms: 3,
                    next_token: Some("t@1".into()),
                    bound_ms: Some(1_900),
                    deferred_from_ms: None,
                }),
                keys: GroupCheckpoint::pack_keys([(0, 1u128), (0, u128::MAX), (10_000, 7)].into_iter()),
            },
        );
        cp
    }

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert_eq!(load(&path, LIMIT).expect("missing is fine"), None);
        let cp = sample();
        save(&path, &cp).expect("save");
        save(&path, &cp).expect("save again over it");
        let back = load(&path, LIMIT).expect("load").expect("present");
        assert_eq!(back, cp);
        let keys = back.log_groups["/vpc/a"].unpack_keys().expect("keys");
        assert_eq!(keys, vec![(0, 1), (0, u128::MAX), (10_000, 7)]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("e").file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn corrupt_or_foreign_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"version\": 1, \"log_gro").expect("write");
        let e = crate::errors::chain(&load(&path, LIMIT).expect_err("corrupt"));
        assert!(e.contains("state.json") && e.contains("corrupt"), "{e}");
        std::fs::write(&path, b"{\"version\": 9, \"saved_at_ms\": 0, \"log_groups\": {}}").expect("write");
        let e = crate::errors::chain(&load(&path, LIMIT).expect_err("version"));
        assert!(e.contains("version 9"), "{e}");
        let mut cp = sample();
        cp.log_groups.get_mut("/vpc/a").expect("g").keys[0].keys.push('z');
        std::fs::write(&path, serde_json::to_vec(&cp).expect("json")).expect("write");
        let e = crate::errors::chain(&load(&path, LIMIT).expect_err("bad keys"));
        assert!(e.contains("/vpc/a"), "{e}");
        std::fs::write(dir.path().join("file"), b"").expect("write");
        assert!(check_writable_dir(&dir.path().join("file/state.json")).is_err(), "a file is no folder");
        assert!(check_writable_dir(&dir.path().join("new/sub/state.json")).is_ok(), "missing folders are created");
        assert!(dir.path().join("new/sub").is_dir());
        assert!(check_writable_dir(&path).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_old_temporary_name_never_gets_its_target_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"precious").expect("write");
        let path = dir.path().join("state.json");
        // The name the writer used to write through, and a probe name.
        std::os::unix::fs::symlink(&victim, dir.path().join(".state.json.tmp")).expect("symlink");
        std::os::unix::fs::symlink(&victim, dir.path().join(format!(".{}.probe", std::process::id())))
            .expect("symlink");
        check_writable_dir(&path).expect("writable");
        save(&path, &sample()).expect("save");
        save(&path, &sample()).expect("save again");
        assert_eq!(std::fs::read(&victim).expect("read"), b"precious");
        assert_eq!(load(&path, LIMIT).expect("load"), Some(sample()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the owner reads the state file");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_fifo_or_oversized_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.json");
        save(&real, &sample()).expect("save");
        let link = dir.path().join("state.json");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = crate::errors::chain(&load(&link, LIMIT).expect_err("symlink"));
        assert!(e.contains("state.json") && e.contains("symbolic link"), "{e}");
        // A FIFO would block a plain read forever.
        let fifo = dir.path().join("fifo.json");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(ok.success());
        let e = crate::errors::chain(&load(&fifo, LIMIT).expect_err("fifo"));
        assert!(e.contains("fifo.json") && e.contains("not a regular file"), "{e}");
        let dir_path = dir.path().join("sub");
        std::fs::create_dir(&dir_path).expect("mkdir");
        assert!(crate::errors::chain(&load(&dir_path, LIMIT).expect_err("dir")).contains("not a regular file"));
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; LIMIT as usize + 1]).expect("write");
        let e = crate::errors::chain(&load(&big, LIMIT).expect_err("big"));
        assert!(e.contains("big.json") && e.contains("larger than"), "{e}");
        // A token longer than any AWS writes.
        let mut cp = sample();
        cp.log_groups.get_mut("/vpc/a").expect("g").scan.as_mut().expect("scan").next_token =
            Some("x".repeat(MAX_TOKEN_LEN + 1));
        save(&real, &cp).expect("save");
        let e = crate::errors::chain(&load(&real, LIMIT).expect_err("token"));
        assert!(e.contains("real.json") && e.contains("token"), "{e}");
    }

    #[test]
    fn times_in_the_future_are_clamped_to_now() {
        let now = 1_800_000_000_000;
        let mut cp = sample();
        let mut ok = cp.clone();
        assert!(clamp_future(&mut ok, now).is_empty(), "past times stay");
        assert_eq!(ok, cp);
        {
            let g = cp.log_groups.get_mut("/vpc/a").expect("g");
            g.horizon_ms = Some(now + 365 * 86_400_000);
            g.last_scan_start_ms = Some(now + FUTURE_TOLERANCE_MS - 1);
            g.scan.as_mut().expect("scan").start_time_ms = -5;
            g.keys = GroupCheckpoint::pack_keys([(now, 1u128), (i64::MAX - 10, 2)].into_iter());
        }
        let clamped = clamp_future(&mut cp, now);
        let fields: Vec<_> = clamped.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["horizon_ms", "scan.start_time_ms", "keys"]);
        let g = &cp.log_groups["/vpc/a"];
        assert_eq!(g.horizon_ms, Some(now));
        assert_eq!(g.last_scan_start_ms, Some(now + FUTURE_TOLERANCE_MS - 1), "within the tolerance");
        assert_eq!(g.scan.as_ref().expect("scan").start_time_ms, 0);
        assert_eq!(g.unpack_keys().expect("keys"), vec![(now, 1)], "the bucket in the future is dropped");
    }
}
