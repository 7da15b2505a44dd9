//! The state file: what each log group's poller needs to go on after a restart
//! without counting anything twice — the horizon, the remembered event keys,
//! and the scan in progress (its range, start and the next page's token).
//!
//! It is JSON (readable with `jq` when debugging), written atomically: a
//! temporary file in the same folder, fsync, rename over the old one, fsync of
//! the folder. A missing file is a first start; an unreadable or corrupt one is
//! a start-up error that names the file — never a silent reset, which would
//! count the lookback window again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Format version of the file.
pub const VERSION: u32 = 1;

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
    pub fn unpack_keys(&self) -> Result<Vec<(i64, u128)>, String> {
        let mut out = Vec::new();
        for b in &self.keys {
            if b.keys.len() % 32 != 0 || !b.keys.is_ascii() {
                return Err(format!("bucket {}: keys are not 32-digit hex numbers", b.bucket_ms));
            }
            for i in (0..b.keys.len()).step_by(32) {
                let k = u128::from_str_radix(&b.keys[i..i + 32], 16)
                    .map_err(|e| format!("bucket {}: bad key: {e}", b.bucket_ms))?;
                out.push((b.bucket_ms, k));
            }
        }
        Ok(out)
    }
}

/// Reads the state file: `Ok(None)` if it does not exist.
pub fn load(path: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cloudwatch.state_file: cannot read {}", path.display())),
    };
    let cp: Checkpoint = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "cloudwatch.state_file: {} is corrupt (not a vpc-flow-exporter state file); fix or remove it to start over from start_from",
            path.display()
        )
    })?;
    if cp.version != VERSION {
        bail!(
            "cloudwatch.state_file: {} has format version {}, this program reads version {VERSION}",
            path.display(),
            cp.version
        );
    }
    for (name, g) in &cp.log_groups {
        if let Err(e) = g.unpack_keys() {
            bail!("cloudwatch.state_file: {} is corrupt: log group {name:?}: {e}", path.display());
        }
    }
    Ok(Some(cp))
}

/// Makes sure at start-up that the state file's folder exists (creating it if
/// needed) and is writable, so that a bad path is found now rather than at
/// the first save.
pub fn check_writable_dir(path: &Path) -> anyhow::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir).with_context(|| {
        format!("cloudwatch.state_file: cannot create the folder {} of {}", dir.display(), path.display())
    })?;
    let probe = dir.join(format!(".{}.probe", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!("cloudwatch.state_file: cannot write in the folder {} of {}", dir.display(), path.display())
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Encodes and writes the file atomically (blocking: call from `spawn_blocking`).
pub fn save(path: &Path, cp: &Checkpoint) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(cp).context("cannot encode the checkpoint")?;
    write_atomic(path, &bytes)
}

/// Writes encoded bytes atomically: temporary file, fsync, rename, fsync of
/// the folder (blocking).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = parent_dir(path);
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable; not every platform can open a folder.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().with_context(|| format!("cannot write the state file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(load(&path).expect("missing is fine"), None);
        let cp = sample();
        save(&path, &cp).expect("save");
        save(&path, &cp).expect("save again over it");
        let back = load(&path).expect("load").expect("present");
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
        let e = format!("{:#}", load(&path).expect_err("corrupt"));
        assert!(e.contains("state.json") && e.contains("corrupt"), "{e}");
        std::fs::write(&path, b"{\"version\": 9, \"saved_at_ms\": 0, \"log_groups\": {}}").expect("write");
        let e = format!("{:#}", load(&path).expect_err("version"));
        assert!(e.contains("version 9"), "{e}");
        let mut cp = sample();
        cp.log_groups.get_mut("/vpc/a").expect("g").keys[0].keys.push('z');
        std::fs::write(&path, serde_json::to_vec(&cp).expect("json")).expect("write");
        let e = format!("{:#}", load(&path).expect_err("bad keys"));
        assert!(e.contains("/vpc/a"), "{e}");
        std::fs::write(dir.path().join("file"), b"").expect("write");
        assert!(check_writable_dir(&dir.path().join("file/state.json")).is_err(), "a file is no folder");
        assert!(check_writable_dir(&dir.path().join("new/sub/state.json")).is_ok(), "missing folders are created");
        assert!(dir.path().join("new/sub").is_dir());
        assert!(check_writable_dir(&path).is_ok());
    }
}
