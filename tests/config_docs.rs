//! The configurations that the README, docs/ and deploy/exporter/ show load
//! as they are when copied: every ```yaml block of README.md and docs/*.md
//! whose top-level keys are the exporter's (`log_format`, `detections`,
//! `geoip`, `limits`, `cloudwatch`, `firehose`) and every deploy/exporter/*.yml. Blocks of
//! other files (Prometheus rules, web configuration) are left out by their keys.

use std::path::{Path, PathBuf};

use vpc_flow_exporter::config::Config;

const KEYS: [&str; 6] = ["log_format", "detections", "geoip", "limits", "cloudwatch", "firehose"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ```yaml blocks of a Markdown file, with the line each starts on.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match &mut cur {
            None if t.starts_with("```yaml") || t.starts_with("```yml") => cur = Some((i + 1, String::new())),
            Some(_) if t.starts_with("```") => out.extend(cur.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Top-level keys of a YAML text (lines at column 0 ending a key).
fn top_keys(yaml: &str) -> Vec<String> {
    yaml.lines()
        .filter(|l| !l.starts_with([' ', '#', '-']) && !l.trim().is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().to_owned()))
        .collect()
}

fn load(name: &str, yaml: &str) {
    if let Err(e) = Config::from_yaml(yaml, Path::new("/etc/vpc-flow-exporter")) {
        panic!("{name} does not load as copied: {e}\n{yaml}");
    }
}

#[test]
fn every_configuration_shown_in_the_docs_loads_when_copied() {
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, block) in yaml_blocks(&text) {
            let keys = top_keys(&block);
            if keys.is_empty() || !keys.iter().all(|k| KEYS.contains(&k.as_str())) {
                continue;
            }
            load(&format!("{}:{line}", file.display()), &block);
            checked += 1;
        }
    }
    // README (2), configuration.md, cloudwatch.md at least.
    assert!(checked >= 4, "only {checked} configuration blocks found");
}

#[test]
fn the_reference_configurations_in_deploy_load() {
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("deploy/exporter")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            load(&p.display().to_string(), &std::fs::read_to_string(&p).unwrap());
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn the_block_finder_sees_blocks_and_their_keys() {
    let md = "x\n```yaml\ncloudwatch:\n  region: a\n# c\nlimits: {}\n```\n```yaml\ngroups:\n```\n";
    let blocks = yaml_blocks(md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(top_keys(&blocks[0].1), ["cloudwatch", "limits"]);
    assert_eq!(blocks[0].0, 2);
}
