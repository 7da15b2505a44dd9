// Structural checks on the shipped dashboards (dashboards/*.json), beyond the
// schema types: stable uids, shared tags, the $datasource and filter variables,
// every datasource reference through $datasource, unique panel ids, no
// overlapping grid positions, a query on every panel, and one panel per alert
// (the alert names given as arguments must each appear in a panel title or
// description). Exits non-zero with every problem listed.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dashboardsDir = join(here, '..');
const alertNames = process.argv.slice(2);
const problems = [];
const REQUIRED_TAG = 'vpc-flow-exporter';
const DATASOURCE_UIDS = new Set(['$datasource', '${datasource}']);
const uids = new Map();
const panelText = [];

function checkDatasource(where, ds) {
  if (ds === undefined) return;
  if (typeof ds !== 'object' || ds === null || !DATASOURCE_UIDS.has(ds.uid)) {
    problems.push(`${where}: datasource ${JSON.stringify(ds)} is not $datasource`);
  }
}

for (const file of readdirSync(dashboardsDir).filter((f) => f.endsWith('.json')).sort()) {
  const d = JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8'));
  const stem = file.replace(/\.json$/, '');
  // Stable uid: set, fixed to the file name, unique.
  if (d.uid !== stem) problems.push(`${file}: uid ${JSON.stringify(d.uid)} must equal the file name "${stem}"`);
  if (!/^[a-z0-9-]{1,40}$/.test(d.uid ?? '')) problems.push(`${file}: uid must be 1-40 of [a-z0-9-]`);
  if (uids.has(d.uid)) problems.push(`${file}: uid ${d.uid} also used by ${uids.get(d.uid)}`);
  uids.set(d.uid, file);
  if (d.id !== null && d.id !== undefined) problems.push(`${file}: id must be null (Grafana assigns it)`);
  if (!Array.isArray(d.tags) || !d.tags.includes(REQUIRED_TAG)) problems.push(`${file}: tags must include "${REQUIRED_TAG}"`);
  if (!d.title?.startsWith('VPC Flow / ')) problems.push(`${file}: title must start with "VPC Flow / "`);

  // Variables: $datasource first, the others query through it.
  const vars = d.templating?.list ?? [];
  const dsVar = vars.find((v) => v.name === 'datasource');
  if (!dsVar || dsVar.type !== 'datasource' || dsVar.query !== 'prometheus') {
    problems.push(`${file}: needs a variable "datasource" of type datasource querying prometheus`);
  }
  for (const v of vars) {
    if (v.type === 'datasource') continue;
    checkDatasource(`${file}: variable ${v.name}`, v.datasource ?? null);
  }
  if (stem === 'vpc-flow-security' && !vars.some((v) => v.name === 'interface')) {
    problems.push(`${file}: needs an "interface" variable`);
  }

  // Panels: ids, grid, datasources, queries.
  const flat = [];
  for (const p of d.panels ?? []) {
    flat.push(p);
    for (const inner of p.panels ?? []) flat.push(inner);
  }
  const ids = new Set();
  const boxes = [];
  for (const p of flat) {
    const where = `${file}: panel ${p.id} ${JSON.stringify(p.title)}`;
    if (typeof p.id !== 'number') problems.push(`${where}: no numeric id`);
    else if (ids.has(p.id)) problems.push(`${where}: duplicate panel id`);
    ids.add(p.id);
    const g = p.gridPos;
    if (!g || [g.x, g.y, g.w, g.h].some((n) => typeof n !== 'number')) {
      problems.push(`${where}: no gridPos`);
    } else {
      if (g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1) problems.push(`${where}: gridPos outside the 24 columns`);
      for (const [other, o] of boxes) {
        if (g.x < o.x + o.w && o.x < g.x + g.w && g.y < o.y + o.h && o.y < g.y + g.h) {
          problems.push(`${where}: gridPos overlaps panel ${other}`);
        }
      }
      boxes.push([p.id, g]);
    }
    if (p.type === 'row') continue;
    if (!p.title) problems.push(`${where}: no title`);
    if (!p.description) problems.push(`${where}: no description`);
    checkDatasource(where, p.datasource ?? null);
    const targets = p.targets ?? [];
    if (targets.length === 0) problems.push(`${where}: no query`);
    const refIds = new Set();
    for (const t of targets) {
      checkDatasource(`${where} target ${t.refId}`, t.datasource ?? null);
      if (!t.expr) problems.push(`${where} target ${t.refId}: empty expr`);
      if (refIds.has(t.refId)) problems.push(`${where}: duplicate refId ${t.refId}`);
      refIds.add(t.refId);
      if (/\bjob\s*=\s*"/.test(t.expr ?? '')) problems.push(`${where}: hard-coded job selector, use $job`);
    }
    panelText.push(`${p.title}\n${p.description}`);
  }
  const annotations = d.annotations?.list ?? [];
  for (const a of annotations) checkDatasource(`${file}: annotation ${a.name}`, a.datasource ?? null);
}

for (const name of alertNames) {
  const re = new RegExp(`\\b${name}\\b`);
  if (!panelText.some((t) => re.test(t))) problems.push(`alert ${name}: no dashboard panel names it (a panel per alert)`);
}

if (problems.length > 0) {
  console.error(`dashboards: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`dashboards: ${uids.size} dashboards, structure ok, ${alertNames.length} alerts each with a panel`);
