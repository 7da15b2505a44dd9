// Small Grafana panel builders: the shapes the shipped dashboards use, every
// query through the ${datasource} variable.
local ds = { type: 'prometheus', uid: '${datasource}' };

{
  ds:: ds,

  target(expr, legend='', refId='A', instant=false, format=null):: {
    refId: refId,
    datasource: ds,
    expr: expr,
    legendFormat: legend,
    range: !instant,
    instant: instant,
    editorMode: 'code',
  } + (if format != null then { format: format } else {}),

  // targets: a list of [expr, legend] pairs (refIds A, B, ...).
  targets(list, instant=false, format=null):: [
    $.target(list[i][0], list[i][1], std.char(65 + i), instant, format)
    for i in std.range(0, std.length(list) - 1)
  ],

  local base(type, title, description, targets, w, h) = {
    type: type,
    title: title,
    description: description,
    targets: targets,
    datasource: ds,
    w:: w,
    h:: h,
  },

  stat(title, description, targets, unit='short', w=4, h=4):: base('stat', title, description, targets, w, h) {
    fieldConfig: {
      defaults: {
        unit: unit,
        color: { mode: 'thresholds' },
        thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] },
      },
      overrides: [],
    },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'area',
      justifyMode: 'auto',
      orientation: 'auto',
      textMode: 'auto',
      wideLayout: true,
      showPercentChange: false,
    },
  },

  // A time series panel; `interval` is the smallest step Grafana may use.
  timeseries(title, description, targets, unit='short', w=12, h=8, interval=null, stack=false, threshold=false):: base('timeseries', title, description, targets, w, h) {
    fieldConfig: {
      defaults: {
        unit: unit,
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: 10,
          showPoints: 'never',
          spanNulls: false,
          axisPlacement: 'auto',
          lineInterpolation: 'linear',
          stacking: { mode: if stack then 'normal' else 'none', group: 'A' },
        },
        color: { mode: 'palette-classic' },
        min: 0,
      },
      // A series named "threshold" is drawn as a dashed red line.
      overrides: if threshold then [{
        matcher: { id: 'byName', options: 'threshold' },
        properties: [
          { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
          { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
          { id: 'custom.fillOpacity', value: 0 },
        ],
      }] else [],
    },
    options: {
      legend: { displayMode: 'table', placement: 'right', showLegend: true, calcs: ['max', 'lastNotNull'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  } + (if interval != null then { interval: interval } else {}),

  // A table of one instant query; `rename` names the label and value columns.
  table(title, description, expr, rename, sortBy, w=8, h=10):: base('table', title, description, $.targets([[expr, '']], instant=true, format='table'), w, h) {
    fieldConfig: {
      defaults: { unit: 'short', custom: { align: 'auto', cellOptions: { type: 'auto' } } },
      overrides: [],
    },
    options: { showHeader: true, cellHeight: 'sm', sortBy: [{ displayName: sortBy, desc: true }] },
    transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: rename } }],
  },

  piechart(title, description, targets, w=8, h=8):: base('piechart', title, description, targets, w, h) {
    fieldConfig: { defaults: { unit: 'short', color: { mode: 'palette-classic' } }, overrides: [] },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      pieType: 'donut',
      displayLabels: ['percent'],
      legend: { displayMode: 'table', placement: 'right', showLegend: true, values: ['value', 'percent'] },
      tooltip: { mode: 'single', sort: 'none' },
    },
  },

  bargauge(title, description, targets, w=8, h=8):: base('bargauge', title, description, targets, w, h) {
    fieldConfig: { defaults: { unit: 'short', min: 0, color: { mode: 'palette-classic' } }, overrides: [] },
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      orientation: 'horizontal',
      displayMode: 'gradient',
      showUnfilled: true,
      valueMode: 'color',
      namePlacement: 'auto',
      sizing: 'auto',
    },
  },

  geomap(title, description, targets, w=12, h=10):: base('geomap', title, description, targets, w, h) {
    fieldConfig: { defaults: { unit: 'short', color: { mode: 'continuous-GrYlRd' } }, overrides: [] },
    options: {
      view: { id: 'zero', lat: 20, lon: 0, zoom: 1, allLayers: true },
      controls: { showZoom: true, mouseWheelZoom: false, showAttribution: true },
      basemap: { type: 'default', name: 'Basemap', config: {} },
      layers: [{
        type: 'markers',
        name: 'Sources',
        config: {
          showLegend: true,
          style: {
            size: { field: 'Value', fixed: 5, min: 4, max: 30 },
            color: { field: 'Value', fixed: 'dark-green' },
            opacity: 0.6,
            symbol: { mode: 'fixed', fixed: 'img/icons/marker/circle.svg' },
          },
        },
        location: { mode: 'lookup', lookup: 'country', gazetteer: 'public/gazetteer/countries.json' },
        tooltip: true,
      }],
      tooltip: { mode: 'details' },
    },
  },

  row(title, panels):: { title: title, panels: panels },

  // Lays rows out on the 24-column grid, numbering panels from 1.
  layout(rows):: (
    local place(acc, row) = (
      local rowPanel = { type: 'row', title: row.title, collapsed: false, panels: [], gridPos: { h: 1, w: 24, x: 0, y: acc.y } };
      local step(st, p) = (
        local wrap = st.x + p.w > 24;
        local x = if wrap then 0 else st.x;
        local y = if wrap then st.y + st.rowH else st.y;
        local rowH = if wrap then p.h else std.max(st.rowH, p.h);
        { x: x + p.w, y: y, rowH: rowH, out: st.out + [p { gridPos: { h: p.h, w: p.w, x: x, y: y } }] }
      );
      local placed = std.foldl(step, row.panels, { x: 0, y: acc.y + 1, rowH: 0, out: [] });
      { y: placed.y + placed.rowH, out: acc.out + [rowPanel] + placed.out }
    );
    local all = std.foldl(place, rows, { y: 0, out: [] }).out;
    [all[i] { id: i + 1 } for i in std.range(0, std.length(all) - 1)]
  ),

  variable(name, label, query, allValue='.+', hide=0):: {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    query: { query: query, refId: name + '-query' },
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: allValue,
    current: { text: 'All', value: '$__all' },
    options: [],
    sort: 1,
    regex: '',
    hide: hide,
  },

  dashboard(c, uid, title, description, variables, rows):: {
    uid: uid,
    title: title,
    description: description,
    tags: c.dashboardTags,
    editable: true,
    graphTooltip: 1,
    id: null,
    schemaVersion: 39,
    version: 1,
    refresh: c.dashboardRefresh,
    time: { from: c.dashboardTimeFrom, to: 'now' },
    timepicker: {},
    timezone: '',
    fiscalYearStartMonth: 0,
    liveNow: false,
    links: [{
      title: 'VPC Flow dashboards',
      type: 'dashboards',
      tags: [c.dashboardTags[0]],
      asDropdown: true,
      includeVars: true,
      keepTime: true,
      icon: 'external link',
      targetBlank: false,
      tooltip: '',
      url: '',
    }],
    annotations: { list: [] },
    templating: {
      list: [{
        name: 'datasource',
        label: 'Data source',
        type: 'datasource',
        query: 'prometheus',
        current: { text: 'Prometheus', value: 'prometheus' },
        hide: 0,
        includeAll: false,
        multi: false,
        options: [],
        refresh: 1,
        regex: '',
      }] + variables,
    },
    panels: $.layout(rows),
  },
}
