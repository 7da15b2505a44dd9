// The "VPC Flow / Exporter health" dashboard: scrape and process, parsing and
// limits, and the CloudWatch poller, with one panel per health alert.
local g = import '../lib/grafana.libsonnet';

{
  local c = $._config,
  local mi = c.dashboardMinInterval,
  local cl = if c.showMultiCluster then ', %s=~"$cluster"' % c.clusterLabel else '',
  local f = 'job=~"$job", instance=~"$instance"' + cl,
  local th(name) = ['vpc_flow_alert_threshold{threshold="%s", interface_id=""}' % name, 'threshold'],
  local cw = '(CloudWatch) ',
  local fh = '(Firehose) ',
  local s3 = '(S3) ',
  // Recording rules carry no instance: job (and cluster) only.
  local fj = 'job=~"$job"' + cl,

  grafanaDashboards+:: {
    'vpc-flow-exporter-health.json': g.dashboard(
      c,
      'vpc-flow-exporter-health',
      'VPC Flow / Exporter health',
      "The exporter's own health: scrapes, process, parsing, limits, trackers, CloudWatch Logs polling, the Firehose receiver and the S3/SQS source, with one panel per health alert.",
      (if c.showMultiCluster then [g.variable('cluster', 'Cluster', 'label_values(vpc_flow_exporter_build_info, %s)' % c.clusterLabel)] else []) + [
        g.variable('job', 'Job', 'label_values(vpc_flow_exporter_build_info%s, job)' % (if c.showMultiCluster then '{%s=~"$cluster"}' % c.clusterLabel else '')),
        g.variable('instance', 'Instance', 'label_values(vpc_flow_exporter_build_info{job=~"$job"%s}, instance)' % cl),
      ],
      [
        g.row('Exporter', [
          g.stat('Up', 'Lowest scrape `up` of the selected instances (1: all up).', g.targets([['min(up{%s})' % f, 'up']])),
          g.stat('Version', 'Exporter version (vpc_flow_exporter_build_info).', g.targets([['max by (version) (vpc_flow_exporter_build_info{%s})' % f, '{{version}}']])),
          g.stat('Interfaces with traffic', 'Distinct interfaces with traffic records in the last 10 minutes, over every replica of the selected jobs (each counted once, however many replicas saw it; the per-replica count against its cap is in Parsing and limits).', g.targets([['count(interface_id:vpc_flow_records:increase%s{%s})' % [c.window, fj], 'interfaces']])),
          g.stat('Newest flow age', 'How far behind the newest flow time seen is.', g.targets([['time() - max(vpc_flow_exporter_last_flow_timestamp_seconds{%s})' % f, 'age']]), 's'),
          g.stat('Lines read/s', 'Flow-log lines read per second (records, headers and invalid lines).', g.targets([['sum(rate(vpc_flow_exporter_lines_total{%s}[$__rate_interval]))' % f, 'lines/s']]), 'suffix: lines/s'),
          g.stat('Firing exporter alerts', 'VpcFlowExporter alerts firing now.', g.targets([['count(ALERTS{alertname=~"VpcFlowExporter.*", alertstate="firing"}) or vector(0)', 'alerts']])),
        ]),
        g.row('Scrape and process', [
          g.timeseries('Scrape up - VpcFlowExporterDown', 'Scrape `up` per instance.', g.targets([['up{%s}' % f, '{{instance}}']]), w=8, interval=mi),
          g.timeseries('Scrape duration', 'How long Prometheus takes to scrape each instance; at 10,000 interfaces it stays well under the scrape timeout.', g.targets([
            ['scrape_duration_seconds{%s}' % f, '{{instance}}'],
          ]), 's', w=8, interval=mi),
          g.timeseries('Samples per scrape', 'Samples scraped and new series added per scrape, per instance (the series the exporter costs Prometheus).', g.targets([
            ['scrape_samples_scraped{%s}' % f, '{{instance}} samples'],
            ['scrape_series_added{%s}' % f, '{{instance}} new series'],
          ]), w=8, interval=mi),
          g.timeseries('Resident memory', 'Resident memory of each exporter process.', g.targets([
            ['process_resident_memory_bytes{%s}' % f, '{{instance}}'],
          ]), 'bytes', interval=mi),
          g.timeseries('CPU', 'CPU used by each exporter process, in cores.', g.targets([
            ['rate(process_cpu_seconds_total{%s}[$__rate_interval])' % f, '{{instance}}'],
          ]), 'short', interval=mi),
        ]),
        g.row('Parsing and limits', [
          g.timeseries('Lines and records/s', 'Lines read and traffic records counted per second.', g.targets([
            ['sum(rate(vpc_flow_exporter_lines_total{%s}[$__rate_interval]))' % f, 'lines/s'],
            ['sum(rate(vpc_flow_records_total{%s}[$__rate_interval]))' % f, 'traffic records/s'],
          ]), 'suffix: records/s', w=8, interval=mi),
          g.timeseries('Parse errors/s by reason', 'Invalid lines per second by reason.', g.targets([
            ['sum by (reason) (rate(vpc_flow_exporter_parse_errors_total{%s}[$__rate_interval]))' % f, '{{reason}}'],
          ]), 'suffix: lines/s', w=8, interval=mi),
          g.timeseries('Parse-error ratio - VpcFlowExporterParseErrors', 'Invalid lines / lines read over 10 minutes, against the threshold.', g.targets([
            ['sum(rate(vpc_flow_exporter_parse_errors_total{%s}[10m])) / sum(rate(vpc_flow_exporter_lines_total{%s}[10m]))' % [f, f], 'ratio'],
            th('parse_error_ratio'),
          ]), 'percentunit', w=8, interval=mi, threshold=true),
          g.timeseries('Interfaces and cap - VpcFlowExporterInterfaceCapReached, VpcFlowExporterInterfaceCapNearing', 'Interfaces tracked against limits.max_interfaces per instance, and records folded into interface_id="other".', g.targets([
            ['vpc_flow_exporter_interfaces{%s}' % f, '{{instance}} interfaces'],
            ['vpc_flow_exporter_max_interfaces{%s}' % f, '{{instance}} cap'],
            ['sum by (instance) (rate(vpc_flow_exporter_interface_limit_records_total{%s}[$__rate_interval]))' % f, '{{instance}} folded records/s'],
          ]), w=8, interval=mi),
          g.timeseries('Tracker entries', 'Addresses held by each windowed tracker.', g.targets([
            ['sum by (tracker) (vpc_flow_exporter_tracker_entries{%s})' % f, '{{tracker}}'],
          ]), w=8, interval=mi),
          g.timeseries('Tracker evictions/s', 'Addresses dropped per second to stay within capacity (non-zero: top-K values may be approximate).', g.targets([
            ['sum by (tracker) (rate(vpc_flow_exporter_tracker_evictions_total{%s}[$__rate_interval]))' % f, '{{tracker}}'],
          ]), 'suffix: evictions/s', w=8, interval=mi),
          g.timeseries('Newest flow age - VpcFlowExporterNoRecentFlows', 'Seconds since the newest flow time seen, per instance, against the threshold.', g.targets([
            ['time() - max by (instance) (vpc_flow_exporter_last_flow_timestamp_seconds{%s})' % f, '{{instance}}'],
            th('flow_staleness_seconds'),
          ]), 's', interval=mi, threshold=true),
          g.timeseries('Configuration reloads - VpcFlowExporterConfigReloadFailed', '1 when the last configuration reload (SIGHUP) succeeded, 0 when it failed.', g.targets([
            ['vpc_flow_exporter_config_last_reload_successful{%s}' % f, '{{instance}}'],
          ]), interval=mi),
        ]),
        g.row('CloudWatch Logs polling (live mode only)', [
          g.timeseries(cw + 'Polls/s by log group', 'Complete polls of each log group per second.', g.targets([
            ['sum by (log_group) (rate(vpc_flow_exporter_cloudwatch_poll_duration_seconds_count{%s}[$__rate_interval]))' % f, '{{log_group}}'],
          ]), 'suffix: polls/s', w=8, interval=mi),
          g.timeseries(cw + 'Poll duration', 'Duration of one poll of a log group, p50 and p99.', g.targets([
            ['histogram_quantile(0.5, sum by (log_group, le) (rate(vpc_flow_exporter_cloudwatch_poll_duration_seconds_bucket{%s}[$__rate_interval])))' % f, 'p50 {{log_group}}'],
            ['histogram_quantile(0.99, sum by (log_group, le) (rate(vpc_flow_exporter_cloudwatch_poll_duration_seconds_bucket{%s}[$__rate_interval])))' % f, 'p99 {{log_group}}'],
          ]), 's', w=8, interval=mi),
          g.timeseries(cw + 'Time since last successful poll - VpcFlowExporterCloudWatchPollStale, VpcFlowExporterCloudWatchNeverPolled', 'Seconds since the last successful poll of each log group, against the threshold.', g.targets([
            ['time() - vpc_flow_exporter_cloudwatch_last_success_timestamp_seconds{%s}' % f, '{{log_group}}'],
            th('cloudwatch_poll_stale_seconds'),
          ]), 's', w=8, interval=mi, threshold=true),
          g.timeseries(cw + 'Requests/s by operation', 'CloudWatch Logs API requests per second, retries included.', g.targets([
            ['sum by (operation) (rate(vpc_flow_exporter_cloudwatch_requests_total{%s}[$__rate_interval]))' % f, '{{operation}}'],
          ]), 'reqps', w=8, interval=mi),
          g.timeseries(cw + 'Request errors/s - VpcFlowExporterCloudWatchRequestErrors', 'Failed requests per second by operation and error.', g.targets([
            ['sum by (operation, error) (rate(vpc_flow_exporter_cloudwatch_request_errors_total{%s}[$__rate_interval]))' % f, '{{operation}} {{error}}'],
          ]), 'reqps', w=8, interval=mi),
          g.timeseries(cw + 'Throttled share - VpcFlowExporterCloudWatchThrottled', 'Throttled / sent requests over 10 minutes, against the threshold.', g.targets([
            ['sum by (operation) (rate(vpc_flow_exporter_cloudwatch_request_errors_total{%s, error="throttled"}[10m])) / sum by (operation) (rate(vpc_flow_exporter_cloudwatch_requests_total{%s}[10m]))' % [f, f], '{{operation}}'],
            th('cloudwatch_throttled_ratio'),
          ]), 'percentunit', w=8, interval=mi, threshold=true),
          g.timeseries(cw + 'Late events - VpcFlowExporterIngestionDelayNearLookback', 'Share of events that arrived more than %ss after their flow time (15 minutes), against the threshold; p50/p99 ingestion delay in the legend of the next panel.' % c.ingestionLateBucket, g.targets([
            ['1 - sum by (log_group) (rate(vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_bucket{%s, le="%s"}[15m])) / sum by (log_group) (rate(vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_count{%s}[15m]))' % [f, c.ingestionLateBucket, f], '{{log_group}}'],
            th('ingestion_late_ratio'),
          ]), 'percentunit', w=8, interval=mi, threshold=true),
          g.timeseries(cw + 'Ingestion delay', 'Ingestion time minus event time, p50 and p99, against cloudwatch.lookback.', g.targets([
            ['histogram_quantile(0.5, sum by (log_group, le) (rate(vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_bucket{%s}[$__rate_interval])))' % f, 'p50 {{log_group}}'],
            ['histogram_quantile(0.99, sum by (log_group, le) (rate(vpc_flow_exporter_cloudwatch_ingestion_delay_seconds_bucket{%s}[$__rate_interval])))' % f, 'p99 {{log_group}}'],
            ['max(vpc_flow_exporter_cloudwatch_lookback_seconds{%s})' % f, 'lookback'],
          ]), 's', w=8, interval=mi),
          g.timeseries(cw + 'Events/s by log group', 'Events counted and duplicates skipped per second.', g.targets([
            ['sum by (log_group) (rate(vpc_flow_exporter_cloudwatch_events_total{%s}[$__rate_interval]))' % f, '{{log_group}} events'],
            ['sum by (log_group) (rate(vpc_flow_exporter_cloudwatch_duplicate_events_total{%s}[$__rate_interval]))' % f, '{{log_group}} duplicates'],
          ]), 'suffix: events/s', w=8, interval=mi),
          g.timeseries(cw + 'Log groups up - VpcFlowExporterCloudWatchLogGroupDown', '1 when the last poll of a log group succeeded.', g.targets([
            ['vpc_flow_exporter_cloudwatch_log_group_up{%s}' % f, '{{log_group}} ({{instance}})'],
          ]), w=24, interval=mi),
        ]),
        g.row('Firehose receiver (firehose section only)', [
          g.timeseries(fh + 'Requests/s by status code', 'Firehose requests answered per second by HTTP status, over the selected replicas.', g.targets([
            ['sum by (code) (rate(vpc_flow_exporter_firehose_requests_total{%s}[$__rate_interval]))' % f, '{{code}}'],
          ]), 'reqps', w=8, interval=mi),
          g.timeseries(fh + 'Records/s by kind', 'Records of applied requests per second: CloudWatch Logs data and control messages, flow-log lines, empty and invalid records; and flow-log lines handed to the parser.', g.targets([
            ['sum by (kind) (rate(vpc_flow_exporter_firehose_records_total{%s}[$__rate_interval]))' % f, '{{kind}}'],
            ['sum(rate(vpc_flow_exporter_firehose_lines_total{%s}[$__rate_interval]))' % f, 'lines'],
          ]), 'suffix: records/s', w=8, interval=mi),
          g.timeseries(fh + 'Duplicate and refused requests/s', 'Retries answered 200 without counting again (duplicates), and refused requests by reason.', g.targets([
            ['sum(rate(vpc_flow_exporter_firehose_duplicate_requests_total{%s}[$__rate_interval]))' % f, 'duplicates'],
            ['sum by (reason) (rate(vpc_flow_exporter_firehose_request_errors_total{%s}[$__rate_interval]))' % f, 'refused: {{reason}}'],
          ]), 'reqps', w=8, interval=mi),
          g.timeseries(fh + 'Requests per replica - VpcFlowExporterFirehoseNoDeliveries', 'Requests each replica answered over the idle window (%s); 0 for a configured replica means it stopped receiving.' % c.firehoseIdleWindow, g.targets([
            ['sum by (instance) (increase(vpc_flow_exporter_firehose_requests_total{%s}[%s]))' % [f, c.firehoseIdleWindow], '{{instance}}'],
          ]), 'short', w=8, interval=mi),
          g.timeseries(fh + 'Error and busy shares - VpcFlowExporterFirehoseErrors, VpcFlowExporterFirehoseBusy', 'Per replica: requests answered 400/405/413/415/500 over 10 minutes, and 503 over 15 minutes, as shares of all requests, against the thresholds.', g.targets([
            ['sum by (instance) (rate(vpc_flow_exporter_firehose_requests_total{%s, code!~"200|401|503"}[10m])) / sum by (instance) (rate(vpc_flow_exporter_firehose_requests_total{%s}[10m]))' % [f, f], '{{instance}} errors'],
            ['sum by (instance) (rate(vpc_flow_exporter_firehose_requests_total{%s, code="503"}[15m])) / sum by (instance) (rate(vpc_flow_exporter_firehose_requests_total{%s}[15m]))' % [f, f], '{{instance}} busy (503)'],
            th('firehose_error_ratio'),
            th('firehose_busy_ratio'),
          ]), 'percentunit', w=8, interval=mi, threshold=true),
          g.timeseries(fh + 'Auth failures (10m) - VpcFlowExporterFirehoseAuthFailures', 'Requests refused for a missing or wrong access key per replica over 10 minutes, against the threshold.', g.targets([
            ['sum by (instance) (increase(vpc_flow_exporter_firehose_auth_failures_total{%s}[10m]))' % f, '{{instance}}'],
            th('firehose_auth_failures_10m'),
          ]), 'short', w=8, interval=mi, threshold=true),
          g.timeseries(fh + 'Request latency', 'From request head to response (body upload, decoding, counting), p50 and p99 over the selected replicas.', g.targets([
            ['histogram_quantile(0.5, sum by (le) (rate(vpc_flow_exporter_firehose_request_duration_seconds_bucket{%s}[$__rate_interval])))' % f, 'p50'],
            ['histogram_quantile(0.99, sum by (le) (rate(vpc_flow_exporter_firehose_request_duration_seconds_bucket{%s}[$__rate_interval])))' % f, 'p99'],
          ]), 's', w=8, interval=mi),
          g.timeseries(fh + 'Request size and bytes in flight', 'Body size as received, p50 and p99, and per replica the bytes of request bodies (raw and decompressed) held now; the dashed line is firehose.max_bytes_in_flight (the smallest of the selected replicas), past which requests are answered 503 (VpcFlowExporterFirehoseBusy).', g.targets([
            ['histogram_quantile(0.5, sum by (le) (rate(vpc_flow_exporter_firehose_request_bytes_bucket{%s}[$__rate_interval])))' % f, 'p50 size'],
            ['histogram_quantile(0.99, sum by (le) (rate(vpc_flow_exporter_firehose_request_bytes_bucket{%s}[$__rate_interval])))' % f, 'p99 size'],
            ['vpc_flow_exporter_firehose_bytes_in_flight{%s}' % f, '{{instance}} in flight'],
            ['min(vpc_flow_exporter_firehose_bytes_in_flight_limit{%s})' % f, 'threshold'],
          ]), 'bytes', w=8, interval=mi, threshold=true),
          g.timeseries(fh + 'Remembered request ids and connections', 'Per replica: request ids remembered for retries against their cap (dedup_max_ids), ids dropped at the cap before their time (a retry of one would count again), and open connections of the listener.', g.targets([
            ['vpc_flow_exporter_firehose_dedup_ids{%s}' % f, '{{instance}} ids'],
            ['vpc_flow_exporter_firehose_dedup_ids_limit{%s}' % f, '{{instance}} limit'],
            ['sum by (instance) (rate(vpc_flow_exporter_firehose_dedup_ids_dropped_total{%s}[$__rate_interval]))' % f, '{{instance}} dropped/s'],
            ['vpc_flow_exporter_firehose_http_connections_open{%s}' % f, '{{instance}} connections'],
          ]), 'short', w=8, interval=mi),
        ]),
        g.row('S3 and SQS (s3 section only)', [
          g.timeseries(s3 + 'Objects/s by result', 'S3 objects per second by result: ok (counted), error, duplicate (already counted), skipped (outside key_prefix), over the selected replicas.', g.targets([
            ['sum by (result) (rate(vpc_flow_exporter_s3_objects_total{%s}[$__rate_interval]))' % f, '{{result}}'],
          ]), 'suffix: objects/s', w=8, interval=mi),
          g.timeseries(s3 + 'Object errors (15m) - VpcFlowExporterS3ObjectErrors', 'Objects that could not be counted per reason over 15 minutes (released at shutdown is not an error), against the threshold.', g.targets([
            ['sum by (reason) (increase(vpc_flow_exporter_s3_object_errors_total{%s}[15m]))' % f, '{{reason}}'],
            th('s3_object_errors_15m'),
          ]), 'short', w=8, interval=mi, threshold=true),
          g.timeseries(s3 + 'Lag, event time to counts applied - VpcFlowExporterS3Lagging', 'p50 and p99 of the time from an object being written (its notification) to its counts being applied, over the replicas of the selected jobs (15 minutes), against the threshold.', g.targets([
            ['histogram_quantile(0.5, sum by (le) (rate(vpc_flow_exporter_s3_lag_seconds_bucket{%s}[15m])))' % f, 'p50'],
            ['histogram_quantile(0.99, sum by (le) (rate(vpc_flow_exporter_s3_lag_seconds_bucket{%s}[15m])))' % f, 'p99'],
            th('s3_lag_p99_seconds'),
          ]), 's', w=8, interval=mi, threshold=true),
          g.timeseries(s3 + 'Messages received per replica - VpcFlowExporterS3NotReceiving', 'SQS messages each replica received over the idle window (%s); 0 means it stopped receiving.' % c.s3IdleWindow, g.targets([
            ['sum by (instance) (increase(vpc_flow_exporter_sqs_messages_received_total{%s}[%s]))' % [f, c.s3IdleWindow], '{{instance}}'],
          ]), 'short', w=8, interval=mi),
          g.timeseries(s3 + 'Messages/s', 'SQS messages received, deleted, ignored and not notifications, visibility extensions and releases at shutdown, per second.', g.targets([
            ['sum(rate(vpc_flow_exporter_sqs_messages_received_total{%s}[$__rate_interval]))' % f, 'received'],
            ['sum(rate(vpc_flow_exporter_sqs_messages_deleted_total{%s}[$__rate_interval]))' % f, 'deleted'],
            ['sum(rate(vpc_flow_exporter_sqs_messages_ignored_total{%s}[$__rate_interval]))' % f, 'ignored'],
            ['sum(rate(vpc_flow_exporter_sqs_message_errors_total{%s}[$__rate_interval]))' % f, 'not a notification'],
            ['sum(rate(vpc_flow_exporter_sqs_visibility_extensions_total{%s}[$__rate_interval]))' % f, 'visibility extensions'],
            ['sum(rate(vpc_flow_exporter_sqs_messages_released_total{%s}[$__rate_interval]))' % f, 'released'],
          ]), 'suffix: messages/s', w=8, interval=mi),
          g.timeseries(s3 + 'Objects in work', 'Objects being read now on each replica, against its concurrency.', g.targets([
            ['vpc_flow_exporter_s3_objects_in_work{%s}' % f, '{{instance}} in work'],
            ['vpc_flow_exporter_s3_concurrency{%s}' % f, '{{instance}} concurrency'],
          ]), 'short', w=8, interval=mi),
          g.timeseries(s3 + 'Records and bytes/s', 'Lines and rows of counted objects per second, and their bytes as stored.', g.targets([
            ['sum(rate(vpc_flow_exporter_s3_records_total{%s}[$__rate_interval]))' % f, 'records/s'],
            ['sum(rate(vpc_flow_exporter_s3_object_bytes_total{%s}[$__rate_interval]))' % f, 'bytes/s'],
          ]), 'short', w=8, interval=mi),
          g.timeseries(s3 + 'Request errors/s', 'Failed requests to SQS, S3 and DynamoDB per second, by operation and kind (throttled, server_error, ...).', g.targets([
            ['sum by (operation, error) (rate(vpc_flow_exporter_s3_request_errors_total{%s}[$__rate_interval]))' % f, '{{operation}} {{error}}'],
          ]), 'reqps', w=8, interval=mi),
          g.timeseries(s3 + 'Dedup-table claims/s', 'Claims in the dedup table per second by result (only with s3.dedup_table).', g.targets([
            ['sum by (result) (rate(vpc_flow_exporter_s3_claims_total{%s}[$__rate_interval]))' % f, '{{result}}'],
          ]), 'suffix: claims/s', w=8, interval=mi),
        ]),
      ],
    ),
  },
}
