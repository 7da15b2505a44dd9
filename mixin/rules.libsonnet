// Recording rules: the thresholds as series, the per-interface counts over
// the window, and the seasonal baselines. Naming is level:metric:operation;
// every record keeps `job` and the cluster label (and sums over instances:
// shards add up).
local p = import 'lib/promql.libsonnet';

{
  local c = $._config,
  local w = c.window,

  // One recording rule per interface-level count.
  local count(record, metric, labels, extra='') = {
    record: record,
    expr: 'round(sum by (%s) (\n%s))\n' % [p.by(c, labels), p.countIn(c, metric, extra)],
  },

  // The baseline of a per-interface count: the most it counted within
  // baselineBand around the same time of day, as the median over
  // baselineDays, or as it was baselineWeeks ago when that is higher.
  local baseline(rec) = {
    local band = p.minutes(c.baselineBand),
    local peak(days, label) =
      '  label_replace(max_over_time(%s[%dm] offset %dm), "baseline_day", "%s", "", "")'
      % [rec, band, days * 1440 - band / 2, label],
    record: rec + '_baseline',
    expr: 'max without (baseline_day) (
' +
          '  label_replace(
    quantile without (baseline_day) (0.5,
  ' +
          std.join('
    or
  ', [peak(d, '%dd' % d) for d in c.baselineDays]) +
          '
    ),
    "baseline_day", "days", "", "")
' +
          std.join('', ['  or
' + peak(7 * wk, '%dw' % wk) + '
' for wk in c.baselineWeeks]) +
          ')
',
  },

  // A number as PromQL writes it: 0.1, not 0.10000000000000001.
  local num(v) = if std.type(v) == 'string' then v else if v == std.floor(v) then '%d' % v else '%g' % v,

  local thresholdRules = std.flattenArrays([
    local t = c.thresholds[name];
    [{
      record: 'vpc_flow_alert_threshold',
      expr: 'vector(%s)' % num(t.default),
      labels: { threshold: name },
    }] + [
      {
        record: 'vpc_flow_alert_threshold',
        expr: 'vector(%s)' % num(t.interfaces[iface]),
        labels: { threshold: name, interface_id: iface },
      }
      for iface in std.objectFields(std.get(t, 'interfaces', {}))
    ]
    for name in std.objectFields(c.thresholds)
  ]),

  prometheusRules+:: {
    groups+: [
      {
        name: 'vpc-flow-thresholds',
        interval: c.ruleInterval,
        rules: thresholdRules,
      },
      {
        name: 'vpc-flow-recording',
        interval: c.ruleInterval,
        rules: [
          count('interface_id:vpc_flow_records:increase' + w, 'vpc_flow_records_total', ['interface_id']),
          count('interface_id:vpc_flow_rejected_records:increase' + w, 'vpc_flow_records_total', ['interface_id'], 'action="REJECT"'),
          count('interface_id:vpc_flow_short_connections:increase' + w, 'vpc_flow_short_connections_total', ['interface_id']),
          count('interface_id:vpc_flow_illegal_source_accepts:increase' + w, 'vpc_flow_illegal_source_accepts_total', ['interface_id']),
          count('interface_id_action:vpc_flow_unapproved_destination_records:increase' + w, 'vpc_flow_unapproved_destination_records_total', ['interface_id', 'action']),
          count('interface_id_dstport_action:vpc_flow_forbidden_port_records:increase' + w, 'vpc_flow_forbidden_port_records_total', ['interface_id', 'dstport', 'action']),
          count('interface_id_log_status:vpc_flow_log_status_records:increase' + w, 'vpc_flow_log_status_total', ['interface_id', 'log_status'], 'log_status!="OK"'),
          {
            // Distinct rejected ports per source, summed over shards: an upper
            // bound when one scanner's records reach several replicas (a port
            // seen by two counts twice); see docs/alerts.md.
            record: 'srcaddr:vpc_flow_top_port_scanners:sum',
            expr: 'sum by (%s) (%s)\n' % [p.by(c, ['srcaddr']), p.gauge(c, 'vpc_flow_top_port_scanners')],
          },
        ],
      },
      {
        name: 'vpc-flow-baseline',
        interval: c.ruleInterval,
        rules: [
          baseline('interface_id:vpc_flow_rejected_records:increase' + w),
          baseline('interface_id:vpc_flow_short_connections:increase' + w),
        ],
      },
    ],
  },
}
