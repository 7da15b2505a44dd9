#!/usr/bin/env bash
# Checks the monitoring mixin that ships with the exporter, with the real tools:
#   1. alert rules: promtool check rules, then promtool test rules alerts/tests/*.yml
#   2. rule conventions and docs: names, severity, annotations, runbook anchors,
#      every alert and threshold documented (docs/runbook.md, docs/alerts.md)
#   3. Alertmanager example: amtool check-config and severity routing
#   4. Prometheus config of the stack: promtool check config
#   5. dashboards: npm ci + TypeScript check against @grafana/schema, structure
#   6. docker-compose.yml (alone and with the AWS override): docker-compose
#      config -q, and every file or folder it mounts exists
# The end-to-end proof against a running Prometheus and Alertmanager is the
# Rust test tests/stack_e2e.rs (cargo test --test stack_e2e).
#
# Needs: promtool (Debian prometheus), amtool (prometheus-alertmanager),
# docker-compose, python3 with PyYAML (a docker-compose dependency), node, npm.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-mixin: FAIL: $*" >&2; exit 1; }
step() { echo; echo "== check-mixin: $*"; }

missing=()
for tool in promtool amtool docker-compose python3 node npm; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    fail "missing tool(s): ${missing[*]} (Debian packages: prometheus, prometheus-alertmanager, docker-compose, nodejs, npm; scripts/setup-test-deps.sh installs the first three)"
fi
python3 -c 'import yaml' 2>/dev/null || fail "python3 has no PyYAML (Debian package python3-yaml)"

rules=(alerts/*.yml)
[ -e "${rules[0]}" ] || fail "no rule files in alerts/"

step "promtool check rules ${rules[*]}"
promtool check rules "${rules[@]}"

step "promtool test rules alerts/tests/*.yml"
promtool test rules alerts/tests/*.yml

step "rule conventions, runbook and docs"
alert_names=$(python3 - "${rules[@]}" <<'PY'
import re, sys, yaml

RUNBOOK_BASE = "https://github.com/vpc-flow-exporter/vpc-flow-exporter/blob/main/docs/runbook.md#"
problems = []
alerts, thresholds = [], []
for path in sys.argv[1:]:
    doc = yaml.safe_load(open(path))
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                if rule["record"] == "vpc_flow_alert_threshold":
                    thresholds.append(rule["labels"]["threshold"])
                continue
            name = rule["alert"]
            alerts.append(name)
            where = f"{path}: {name}"
            if not re.fullmatch(r"VpcFlow[A-Z][A-Za-z0-9]*", name):
                problems.append(f"{where}: alert names are CamelCase with the prefix VpcFlow")
            if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                problems.append(f"{where}: severity must be critical, warning or info")
            ann = rule.get("annotations", {})
            if not ann.get("summary") or "{{" in ann["summary"]:
                problems.append(f"{where}: summary must be set and static")
            if "{{" not in ann.get("description", ""):
                problems.append(f"{where}: description must be templated")
            url = ann.get("runbook_url", "")
            if not url.startswith(RUNBOOK_BASE):
                problems.append(f"{where}: runbook_url must start with {RUNBOOK_BASE}")
            anchor = url[len(RUNBOOK_BASE):]
            headings = {l.lstrip("#").strip().lower() for l in open("docs/runbook.md") if l.startswith("#")}
            if anchor not in headings:
                problems.append(f"{where}: docs/runbook.md has no heading for anchor #{anchor}")
runbook = open("docs/runbook.md").read()
alerts_doc = open("docs/alerts.md").read()
for name in sorted(set(alerts)):
    if not re.search(rf"^#+ {name}\s*$", runbook, re.M):
        problems.append(f"{name}: no section '## {name}' in docs/runbook.md")
    if name not in alerts_doc:
        problems.append(f"{name}: not listed in docs/alerts.md")
for t in thresholds:
    if f"`{t}`" not in alerts_doc:
        problems.append(f"threshold {t}: not documented in docs/alerts.md")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(" ".join(sorted(set(alerts))))
PY
) || fail "rule conventions or docs (see above)"
echo "$(wc -w <<<"$alert_names") alerts follow the conventions and are documented"

step "amtool check-config deploy/alertmanager.yml"
amtool check-config deploy/alertmanager.yml
for pair in critical:pager warning:chat info:digest; do
    severity=${pair%%:*} want=${pair#*:}
    got=$(amtool config routes test --config.file=deploy/alertmanager.yml "severity=$severity" alertname=VpcFlowTest interface_id=eni-0)
    [ "$got" = "$want" ] || fail "deploy/alertmanager.yml routes severity=$severity to '$got', want '$want'"
    echo "severity=$severity -> $got"
done

step "promtool check config deploy/prometheus.yml"
promtool check config deploy/prometheus.yml

step "dashboards: TypeScript check against @grafana/schema"
(
    cd dashboards/schema-check
    npm ci --no-audit --no-fund --loglevel=error
    node generate.mjs
    ./node_modules/.bin/tsc --noEmit -p .
)
echo "dashboards satisfy the @grafana/schema types"

step "dashboards: structure"
# shellcheck disable=SC2086 # one argument per alert name
node dashboards/schema-check/structure.mjs $alert_names

step "docker-compose config"
for files in "docker-compose.yml" "docker-compose.yml deploy/docker-compose.aws.yml"; do
    args=()
    for f in $files; do args+=(-f "$f"); done
    docker-compose "${args[@]}" config -q
    docker-compose "${args[@]}" config | python3 -c '
import os, sys, yaml
doc = yaml.safe_load(sys.stdin)
bad = []
count = 0
for name, svc in doc.get("services", {}).items():
    for v in svc.get("volumes", []):
        src = v.get("source") if isinstance(v, dict) else v.split(":")[0]
        kind = v.get("type", "bind") if isinstance(v, dict) else ("bind" if src.startswith(("/", ".")) else "volume")
        if kind != "bind":
            continue
        count += 1
        if not os.path.exists(src):
            bad.append(f"{name}: mounts {src}, which does not exist")
if bad:
    sys.exit("\n".join(bad))
print(f"{count} mounted files and folders exist")
' || fail "docker-compose ($files) mounts a missing file"
    echo "docker-compose ${args[*]}: ok"
done

echo
echo "check-mixin: all checks passed"
