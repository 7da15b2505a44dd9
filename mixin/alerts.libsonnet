// Alerting rules: the security detections (per interface, 10-minute windows,
// per-interface thresholds) and the exporter's own health. No rule joins on
// `up`: the exporter shows every new counter series at 0 first
// (--metrics.new-series-hold), so a plain count over the window sees it whole.
local p = import 'lib/promql.libsonnet';

{
  local c = $._config,
  local w = c.window,
  local notSpecial = 'interface_id!~"%s"' % c.excludedInterfaces,
  local rec(name) = 'interface_id:%s:increase%s' % [name, w],

  local alert(name, expr, summary, description, extra={}) = {
    alert: name,
    expr: expr,
    labels: { severity: c.severities[name] },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookUrlBase + std.asciiLower(name),
    },
  } + extra,
  local security(name, expr, summary, description) =
    alert(name, expr, summary, description, { keep_firing_for: c.keepFiringFor }),

  local thr(name) = 'vpc_flow_alert_threshold{threshold="%s"}' % name,
  local count = '{{ $value | printf "%.0f" }}',

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'vpc-flow-security',
        interval: c.ruleInterval,
        rules: [
          security(
            'VpcFlowIllegalSourceAccepted',
            '%s > 0\n' % rec('vpc_flow_illegal_source_accepts'),
            'Traffic from a source outside the allowed ranges was accepted.',
            'Interface {{ $labels.interface_id }} accepted %s record(s) in the last %s from source addresses outside detections.allowed_source_cidrs.' % [count, w],
          ),
          security(
            'VpcFlowNatBreach',
            'interface_id_action:vpc_flow_unapproved_destination_records:increase%s{action!="REJECT"} > 0\n' % w,
            'Traffic to an unapproved destination was accepted - possible breach.',
            'Interface {{ $labels.interface_id }} logged %s {{ $labels.action }} record(s) in the last %s whose pkt-dstaddr is outside detections.approved_destination_cidrs.' % [count, w],
          ),
          security(
            'VpcFlowNatBreachRejected',
            'interface_id_action:vpc_flow_unapproved_destination_records:increase%s{action="REJECT"} > 0\n' % w,
            'Traffic to an unapproved destination was attempted and rejected.',
            'Interface {{ $labels.interface_id }} logged %s REJECT record(s) in the last %s whose pkt-dstaddr is outside detections.approved_destination_cidrs.' % [count, w],
          ),
          security(
            'VpcFlowForbiddenPortAccepted',
            'interface_id_dstport_action:vpc_flow_forbidden_port_records:increase%s{action!="REJECT"} > 0\n' % w,
            'Traffic to a forbidden destination port was accepted.',
            'Interface {{ $labels.interface_id }} accepted %s record(s) to forbidden port {{ $labels.dstport }} in the last %s.' % [count, w],
          ),
          security(
            'VpcFlowForbiddenPortRejected',
            p.perInterface('interface_id_dstport_action:vpc_flow_forbidden_port_records:increase%s{action="REJECT", %s}' % [w, notSpecial], '>', 'forbidden_port_rejected_10m'),
            'Many rejected attempts to a forbidden destination port.',
            'Interface {{ $labels.interface_id }} rejected %s record(s) to forbidden port {{ $labels.dstport }} in the last %s, over its threshold %s.' % [count, w, thr('forbidden_port_rejected_10m')],
          ),
          security(
            'VpcFlowLogSkipData',
            'interface_id_log_status:vpc_flow_log_status_records:increase%s{log_status="SKIPDATA"} > 0\n' % w,
            'Flow-log records were skipped (SKIPDATA) - traffic went unlogged.',
            'Interface {{ $labels.interface_id }} logged %s SKIPDATA record(s) in the last %s: AWS skipped flow records during those capture windows, so detections are blind there.' % [count, w],
          ),
          security(
            'VpcFlowLogNoData',
            |||
              interface_id_log_status:vpc_flow_log_status_records:increase%(w)s{log_status="NODATA"} > 0
              unless on (%(by)s)
                max_over_time(%(traffic)s[20m]) > 0
              and on (%(by)s)
                max_over_time(%(traffic)s[60m] offset 1410m) >= %(usual)s
            ||| % { w: w, by: p.by(c, ['interface_id']), traffic: rec('vpc_flow_records'), usual: p.threshold('nodata_usual_records_10m') },
            'An interface that is busy at this time of day carries no traffic.',
            'Interface {{ $labels.interface_id }} logged only NODATA for 30 minutes, though it carried traffic around this time yesterday.',
          ),
          security(
            'VpcFlowTooManyRejects',
            p.perInterface('%s{%s}' % [rec('vpc_flow_rejected_records'), notSpecial], '>', 'rejected_records_10m'),
            'Too many rejected records on an interface.',
            'Interface {{ $labels.interface_id }} rejected %s records in the last %s, over its threshold %s.' % [count, w, thr('rejected_records_10m')],
          ),
          security(
            'VpcFlowRejectsAboveBaseline',
            |||
              (
                %(rec)s{%(ns)s}
                  > %(rec)s_baseline * %(factor)s
              )
              and
              %(floor)s
            ||| % {
              rec: rec('vpc_flow_rejected_records'),
              ns: notSpecial,
              factor: p.threshold('rejects_baseline_factor'),
              floor: p.trim(p.perInterface('%s{%s}' % [rec('vpc_flow_rejected_records'), notSpecial], '>=', 'rejects_baseline_floor_10m')),
            },
            'An interface rejects far more traffic than usual at this time.',
            'Interface {{ $labels.interface_id }} rejected %s records in the last %s, more than {{ with printf `%s` | query }}{{ . | first | value }}{{ end }} times its usual {{ with printf `%s_baseline{interface_id="%%s",job="%%s"}` $labels.interface_id $labels.job | query }}{{ . | first | value | printf "%%.0f" }}{{ end }} at this time of day.' % [count, w, thr('rejects_baseline_factor'), rec('vpc_flow_rejected_records')],
          ),
          security(
            'VpcFlowShortConnectionSurge',
            |||
              (
                (%(rec)s{%(ns)s} > %(rec)s_baseline * %(factor)s)
                and
                %(floor)s
              )
              or
              (
                %(static)s
                unless %(rec)s_baseline
              )
            ||| % {
              rec: rec('vpc_flow_short_connections'),
              ns: notSpecial,
              factor: p.threshold('short_connections_baseline_factor'),
              floor: p.trim(p.perInterface('%s{%s}' % [rec('vpc_flow_short_connections'), notSpecial], '>=', 'short_connections_floor_10m')),
              static: p.trim(p.perInterface('%s{%s}' % [rec('vpc_flow_short_connections'), notSpecial], '>', 'short_connections_10m')),
            },
            'Surge of short SYN+FIN connections on an interface.',
            'Interface {{ $labels.interface_id }} logged %s TCP records with both SYN and FIN set in the last %s, far more than usual at this time of day (or over %s where it has no history yet).' % [count, w, thr('short_connections_10m')],
          ),
          security(
            'VpcFlowInternalPortScan',
            'srcaddr:vpc_flow_top_port_scanners:sum{srcaddr=~`%s`} >= %s\n' % [c.internalSourceRegex, p.threshold('port_scan_min_distinct_ports')],
            'An internal source is scanning ports.',
            'Internal source {{ $labels.srcaddr }} hit %s distinct destination ports with rejected traffic within the port-scan window (summed over replicas).' % count,
          ),
          security(
            'VpcFlowPortScan',
            'srcaddr:vpc_flow_top_port_scanners:sum{srcaddr!~`%s`} >= %s\n' % [c.internalSourceRegex, p.threshold('port_scan_min_distinct_ports')],
            'A source on the internet is scanning ports.',
            'Source {{ $labels.srcaddr }} hit %s distinct destination ports with rejected traffic within the port-scan window (summed over replicas).' % count,
          ),
        ],
      },
      {
        // The exporter's own health. The CloudWatch metrics exist only when the
        // exporter polls CloudWatch: these alerts never fire on their absence.
        name: 'vpc-flow-exporter',
        rules: [
          alert(
            'VpcFlowExporterDown',
            'up%(s)s == 0\nor\nabsent(up%(s)s)\n' % { s: p.sel(c) },
            'The vpc-flow-exporter target is down or missing.',
            '{{ if $labels.instance }}Prometheus could not scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes.{{ else }}No target matching %s has been up for 5 minutes.{{ end }} Flow-log detections are blind meanwhile.' % c.vpcFlowSelector,
            { 'for': '5m' },
          ),
          alert(
            'VpcFlowExporterCloudWatchPollStale',
            '(time() - vpc_flow_exporter_cloudwatch_last_success_timestamp_seconds%(s)s) > %(t)s\nand\nvpc_flow_exporter_cloudwatch_last_success_timestamp_seconds%(s)s > 0\n' % { s: p.sel(c), t: p.threshold('cloudwatch_poll_stale_seconds') },
            'A CloudWatch log group has not been polled successfully for too long.',
            'Log group {{ $labels.log_group }} on {{ $labels.instance }} was last polled successfully {{ $value | humanizeDuration }} ago: its flow logs are not being counted.',
            { 'for': '5m' },
          ),
          alert(
            'VpcFlowExporterCloudWatchNeverPolled',
            'sum by (%(by)s) (increase(vpc_flow_exporter_cloudwatch_requests_total%(s)s[15m])) > 0\nunless on (%(by)s)\nmax by (%(by)s) (vpc_flow_exporter_cloudwatch_last_success_timestamp_seconds%(s)s) > 0\n' % { s: p.sel(c), by: p.by(c, ['instance']) },
            'The exporter sends CloudWatch requests but no poll has ever succeeded.',
            '{{ $labels.instance }} has sent {{ $value | printf "%.0f" }} CloudWatch Logs requests in 15 minutes without one successful poll of any log group.',
            { 'for': '15m' },
          ),
          alert(
            'VpcFlowExporterCloudWatchRequestErrors',
            '(\n  sum by (%(by)s) (rate(vpc_flow_exporter_cloudwatch_request_errors_total%(se)s[10m]))\n  /\n  sum by (%(by)s) (rate(vpc_flow_exporter_cloudwatch_requests_total%(s)s[10m]))\n) > %(t)s\n' % { s: p.sel(c), se: p.sel(c, 'error!="throttled"'), by: p.by(c, ['instance', 'operation']), t: p.threshold('cloudwatch_error_ratio') },
            'CloudWatch Logs requests are failing.',
            '{{ $value | humanizePercentage }} of {{ $labels.operation }} requests from {{ $labels.instance }} failed (not throttled) over the last 10 minutes.',
            { 'for': '10m' },
          ),
          alert(
            'VpcFlowExporterCloudWatchLogGroupDown',
            'vpc_flow_exporter_cloudwatch_log_group_up%s == 0\n' % p.sel(c),
            'A CloudWatch log group keeps failing while the exporter runs.',
            'Every poll of log group {{ $labels.log_group }} from {{ $labels.instance }} has failed for 15 minutes; its flow logs are not being counted.',
            { 'for': '15m' },
          ),
          alert(
            'VpcFlowExporterCloudWatchThrottled',
            '(\n  sum by (%(by)s) (rate(vpc_flow_exporter_cloudwatch_request_errors_total%(se)s[10m]))\n  /\n  sum by (%(by)s) (rate(vpc_flow_exporter_cloudwatch_requests_total%(s)s[10m]))\n) > %(t)s\n' % { s: p.sel(c), se: p.sel(c, 'error="throttled"'), by: p.by(c, ['instance', 'operation']), t: p.threshold('cloudwatch_throttled_ratio') },
            'CloudWatch Logs is throttling the exporter.',
            '{{ $value | humanizePercentage }} of {{ $labels.operation }} requests from {{ $labels.instance }} were throttled over the last 10 minutes.',
            { 'for': '15m' },
          ),
          alert(
            'VpcFlowExporterParseErrors',
            '(\n  sum by (%(by)s) (rate(vpc_flow_exporter_parse_errors_total%(s)s[10m]))\n  /\n  sum by (%(by)s) (rate(vpc_flow_exporter_lines_total%(s)s[10m]))\n) > %(t)s\n' % { s: p.sel(c), by: p.by(c, ['instance']), t: p.threshold('parse_error_ratio') },
            'A surge of flow-log lines cannot be parsed.',
            '{{ $value | humanizePercentage }} of the lines read by {{ $labels.instance }} over the last 10 minutes were invalid.',
            { 'for': '10m' },
          ),
          alert(
            'VpcFlowExporterIngestionDelayNearLookback',
            '1 - (\n  sum by (%(by)s) (rate(vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_bucket%(sb)s[15m]))\n  /\n  sum by (%(by)s) (rate(vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_count%(s)s[15m]))\n) > %(t)s\n' % { s: p.sel(c), sb: p.sel(c, 'le="%s"' % c.ingestionLateBucket), by: p.by(c, ['instance', 'log_group']), t: p.threshold('ingestion_late_ratio') },
            'Many flow-log events arrive close to the configured lookback.',
            '{{ $value | humanizePercentage }} of the events of log group {{ $labels.log_group }} on {{ $labels.instance }} arrived more than %ss after their flow time over the last 15 minutes: events later than cloudwatch.lookback are missed.' % c.ingestionLateBucket,
            { 'for': '15m' },
          ),
          alert(
            'VpcFlowExporterInterfaceCapReached',
            'sum by (%(by)s) (increase(vpc_flow_exporter_interface_limit_records_total%(s)s[10m])) > 0\nand on (%(by)s)\nvpc_flow_exporter_interfaces%(s)s >= vpc_flow_exporter_max_interfaces%(s)s\n' % { s: p.sel(c), by: p.by(c, ['instance']) },
            'The interface label cap was reached; records are folded into interface_id="other".',
            '{{ $labels.instance }} folded {{ $value | printf "%.0f" }} records into interface_id="other" in the last 10 minutes because limits.max_interfaces was reached.',
          ),
          alert(
            'VpcFlowExporterInterfaceCapNearing',
            'vpc_flow_exporter_interfaces%(s)s / vpc_flow_exporter_max_interfaces%(s)s > %(t)s\n' % { s: p.sel(c), t: p.threshold('interface_cap_ratio') },
            'The number of interfaces nears limits.max_interfaces.',
            '{{ $labels.instance }} tracks {{ $value | humanizePercentage }} of limits.max_interfaces interfaces; beyond the cap new interfaces are counted as interface_id="other".',
            { 'for': '15m' },
          ),
          alert(
            'VpcFlowExporterConfigReloadFailed',
            'vpc_flow_exporter_config_last_reload_successful%s == 0\n' % p.sel(c),
            'The exporter failed to reload its configuration.',
            '{{ $labels.instance }} could not load its configuration file at the last reload (SIGHUP); it keeps running with the previous configuration.',
            { 'for': '5m' },
          ),
          alert(
            'VpcFlowExporterNoRecentFlows',
            '(time() - vpc_flow_exporter_last_flow_timestamp_seconds%(s)s) > %(t)s\nand\nvpc_flow_exporter_last_flow_timestamp_seconds%(s)s > 0\n' % { s: p.sel(c), t: p.threshold('flow_staleness_seconds') },
            'No new flow records have arrived for too long.',
            'The newest flow seen by {{ $labels.instance }} ended {{ $value | humanizeDuration }} ago.',
            { 'for': '15m' },
          ),
          // The push and queue sources, per replica (`instance`): each replica
          // of a job receives its own share, so a replica that stops receiving
          // or fails is named. The series exist (at 0) only where the source
          // is configured, so nothing fires without it; a replica that is down
          // has stale series (no result) and VpcFlowExporterDown speaks for it.
          alert(
            'VpcFlowExporterFirehoseNoDeliveries',
            'sum by (%(by)s) (increase(vpc_flow_exporter_firehose_requests_total%(s)s[%(w)s])) == 0\n' % { s: p.sel(c), by: p.by(c, ['instance']), w: c.firehoseIdleWindow },
            'A Firehose receiver has had no request for too long.',
            '{{ $labels.instance }} (job {{ $labels.job }}) has answered no Firehose request for %s: the delivery stream stopped, its endpoint URL changed, or the load balancer no longer sends to this replica. Its share of the flow logs is not being counted.' % c.firehoseIdleWindow,
            { 'for': '10m' },
          ),
          alert(
            'VpcFlowExporterFirehoseAuthFailures',
            'sum by (%(by)s) (increase(vpc_flow_exporter_firehose_auth_failures_total%(s)s[10m])) > %(t)s\n' % { s: p.sel(c), by: p.by(c, ['instance']), t: p.threshold('firehose_auth_failures_10m') },
            'Firehose requests are refused for a missing or wrong access key.',
            '{{ $labels.instance }} refused {{ $value | printf "%.0f" }} Firehose requests in the last 10 minutes for a missing or wrong X-Amz-Firehose-Access-Key (401): a stream with an old key, a replica without the new one, or someone guessing keys.',
            { 'for': '5m' },
          ),
          alert(
            'VpcFlowExporterFirehoseErrors',
            '(\n  sum by (%(by)s) (rate(vpc_flow_exporter_firehose_requests_total%(se)s[10m]))\n  /\n  sum by (%(by)s) (rate(vpc_flow_exporter_firehose_requests_total%(s)s[10m]))\n) > %(t)s\n' % { s: p.sel(c), se: p.sel(c, 'code!~"200|401|503"'), by: p.by(c, ['instance']), t: p.threshold('firehose_error_ratio') },
            'Firehose requests are failing.',
            '{{ $value | humanizePercentage }} of the Firehose requests to {{ $labels.instance }} over the last 10 minutes were answered with an error (400, 413, 500, ...; not 401 or 503): Firehose retries them, then writes them to its error bucket (413 at once).',
            { 'for': '10m' },
          ),
          alert(
            'VpcFlowExporterFirehoseBusy',
            '(\n  sum by (%(by)s) (rate(vpc_flow_exporter_firehose_requests_total%(sb)s[15m]))\n  /\n  sum by (%(by)s) (rate(vpc_flow_exporter_firehose_requests_total%(s)s[15m]))\n) > %(t)s\n' % { s: p.sel(c), sb: p.sel(c, 'code="503"'), by: p.by(c, ['instance']), t: p.threshold('firehose_busy_ratio') },
            'A Firehose receiver keeps answering 503 (busy).',
            '{{ $value | humanizePercentage }} of the Firehose requests to {{ $labels.instance }} over the last 15 minutes were answered 503: its bodies in flight reach firehose.max_bytes_in_flight. Firehose retries with back-off, and gives up at the end of its retry duration.',
            { 'for': '15m' },
          ),
          alert(
            'VpcFlowExporterS3NotReceiving',
            'sum by (%(by)s) (increase(vpc_flow_exporter_sqs_messages_received_total%(s)s[%(w)s])) == 0\n' % { s: p.sel(c), by: p.by(c, ['instance']), w: c.s3IdleWindow },
            'An S3 replica has received no SQS message for too long.',
            '{{ $labels.instance }} (job {{ $labels.job }}) has received no message from its SQS queue for %s: its ReceiveMessage calls fail, its objects in work are stuck, or nothing is notified to the queue. Its share of the flow logs is not being counted.' % c.s3IdleWindow,
            { 'for': '10m' },
          ),
          alert(
            'VpcFlowExporterS3Lagging',
            'histogram_quantile(0.99,\n  sum by (%(by)s) (rate(vpc_flow_exporter_s3_lag_seconds_bucket%(s)s[15m]))\n) > %(t)s\n' % { s: p.sel(c), by: p.by(c, ['le']), t: p.threshold('s3_lag_p99_seconds') },
            'S3 objects are counted long after they were written: the queue is falling behind.',
            'The p99 time from an S3 object being written to its counts being applied, over the replicas of job {{ $labels.job }}, is {{ $value | humanizeDuration }} (last 15 minutes): the replicas cannot keep up with the queue.',
            { 'for': '15m' },
          ),
          alert(
            'VpcFlowExporterS3ObjectErrors',
            'sum by (%(by)s) (increase(vpc_flow_exporter_s3_object_errors_total%(s)s[15m])) > %(t)s\n' % { s: p.sel(c, 'reason!="released"'), by: p.by(c, ['instance']), t: p.threshold('s3_object_errors_15m') },
            'S3 objects cannot be counted.',
            '{{ $labels.instance }} could not count {{ $value | printf "%.0f" }} S3 object(s) in the last 15 minutes (corrupt, missing, access denied, ...): their messages go back to the queue and, after its redrive count, to the dead-letter queue, uncounted.',
            { 'for': '5m' },
          ),
        ],
      },
    ],
  },
}
