// The mixin's configuration: selectors, labels, windows, thresholds and
// severities. Override any field from your own jsonnet:
//
//   (import 'vpc-flow-exporter-mixin/mixin.libsonnet') + {
//     _config+:: {
//       vpcFlowSelector: 'job="flows"',
//       thresholds+:: { rejected_records_10m+: { interfaces+: { 'eni-0abc': 20000 } } },
//     },
//   }
//
// docs/alerts.md documents every field.
{
  _config+:: {
    // Selects the exporter's series (every metric, traffic and health alike).
    vpcFlowSelector: 'job="vpc-flow-exporter"',
    // A label that tells Prometheus servers or clusters apart (set by
    // external relabelling or by the scrape config); kept by every recording
    // rule and alert. '' when there is none.
    clusterLabel: 'cluster',
    // HA pairs: two replicas that read the SAME flow logs (not shards). When
    // true, the rules take the max over the members of a pair (series that
    // differ only in `instance`) before summing over shards. Shard, never
    // duplicate: with false (the default) every replica must read its own
    // share of the flow logs.
    haPairs: false,
    // Interval of the recording and alerting groups on the per-interface
    // counters. 1m fits the 10-minute data and keeps the cost at 10,000
    // interfaces down.
    ruleInterval: '1m',
    // Window of the per-interface counts: AWS aggregates flow records over
    // 10 minutes (the default max-aggregation-interval), so each interface's
    // records arrive in bursts that far apart.
    window: '10m',
    // How long a security alert keeps firing after its condition stops
    // holding, so that bursty 10-minute data does not resolve and re-fire.
    keepFiringFor: '10m',
    // The baseline: the most the interface counted within `baselineBand`
    // around the same time of day, as the median over `baselineDays` (one
    // odd day, an incident, does not move it), or as it was `baselineWeeks`
    // weeks ago when that is higher (weekly jobs).
    baselineDays: [1, 2, 3],
    baselineWeeks: [1],
    baselineBand: '1h',
    // Source addresses that are internal (a port scan from one is a
    // warning; from the internet it is info). A regex on `srcaddr`.
    internalSourceRegex: '10\\..*|172\\.(1[6-9]|2[0-9]|3[01])\\..*|192\\.168\\..*|100\\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\\..*|f[cd].*',
    // Histogram bucket (`le` value) of vpc_flow_exporter_cloudwatch_ingestion_delay_seconds
    // beyond which an event counts as late; pick the largest bucket below
    // about 3/4 of cloudwatch.lookback (default lookback 20m -> 900).
    ingestionLateBucket: '900',
    // How long a configured Firehose receiver may go without any request
    // (VpcFlowExporterFirehoseNoDeliveries). Firehose buffers at most 900 s
    // before it delivers, and a VPC with traffic always has records to send.
    firehoseIdleWindow: '20m',
    // How long an S3 replica may go without receiving an SQS message
    // (VpcFlowExporterS3NotReceiving). AWS writes flow-log objects every 5
    // (or 10) minutes per account, region and hour of flows.
    s3IdleWindow: '30m',
    // Interface-id values that per-interface thresholds never apply to.
    excludedInterfaces: 'other|unknown',

    // Thresholds. Each becomes a series vpc_flow_alert_threshold{threshold="<name>"}
    // (the default) and, for those with `interfaces`, one series per
    // interface with an `interface_id` label (an override). More overrides
    // may come from any rule file, see docs/alerts.md.
    thresholds:: {
      rejected_records_10m: { default: 5000, interfaces: {}, help: 'VpcFlowTooManyRejects: REJECT records on one interface in 10 minutes ("more than")' },
      rejects_baseline_factor: { default: 3, help: 'VpcFlowRejectsAboveBaseline: times the baseline ("more than")' },
      rejects_baseline_floor_10m: { default: 200, interfaces: {}, help: 'VpcFlowRejectsAboveBaseline: at least this many REJECT records in 10 minutes' },
      short_connections_baseline_factor: { default: 3, help: 'VpcFlowShortConnectionSurge: times the baseline ("more than")' },
      short_connections_floor_10m: { default: 500, interfaces: {}, help: 'VpcFlowShortConnectionSurge: at least this many SYN+FIN records in 10 minutes' },
      short_connections_10m: { default: 5000, interfaces: {}, help: 'VpcFlowShortConnectionSurge, interfaces without a baseline: SYN+FIN records in 10 minutes ("more than")' },
      forbidden_port_rejected_10m: { default: 20, interfaces: {}, help: 'VpcFlowForbiddenPortRejected: REJECT records to a forbidden port on one interface in 10 minutes ("more than")' },
      nodata_usual_records_10m: { default: 50, help: 'VpcFlowLogNoData: traffic records the interface had in 10 minutes around this time yesterday (at least)' },
      port_scan_min_distinct_ports: { default: 20, help: 'VpcFlowPortScan, VpcFlowInternalPortScan: distinct rejected ports of one source, summed over replicas; keep equal to detections.port_scan.min_distinct_ports' },
      parse_error_ratio: { default: 0.01, help: 'VpcFlowExporterParseErrors: invalid lines / lines read' },
      cloudwatch_error_ratio: { default: 0.1, help: 'VpcFlowExporterCloudWatchRequestErrors: failed (not throttled) / sent requests' },
      cloudwatch_throttled_ratio: { default: 0.05, help: 'VpcFlowExporterCloudWatchThrottled: throttled / sent requests' },
      cloudwatch_poll_stale_seconds: { default: 600, help: 'VpcFlowExporterCloudWatchPollStale: seconds since a log group\'s last successful poll' },
      ingestion_late_ratio: { default: 0.05, help: 'VpcFlowExporterIngestionDelayNearLookback: share of events later than the late bucket' },
      interface_cap_ratio: { default: 0.9, help: 'VpcFlowExporterInterfaceCapNearing: interfaces / limits.max_interfaces' },
      flow_staleness_seconds: { default: 1800, help: 'VpcFlowExporterNoRecentFlows: seconds since the newest flow time seen' },
      firehose_auth_failures_10m: { default: 5, help: 'VpcFlowExporterFirehoseAuthFailures: requests refused for a missing or wrong access key on one replica in 10 minutes ("more than")' },
      firehose_error_ratio: { default: 0.05, help: 'VpcFlowExporterFirehoseErrors: requests answered other than 200, 401 and 503 / requests, on one replica over 10 minutes' },
      firehose_busy_ratio: { default: 0.2, help: 'VpcFlowExporterFirehoseBusy: requests answered 503 / requests, on one replica over 15 minutes' },
      s3_lag_p99_seconds: { default: 900, help: 'VpcFlowExporterS3Lagging: p99 of event time to counts applied, over the replicas of a job, in seconds' },
      s3_object_errors_15m: { default: 0, help: 'VpcFlowExporterS3ObjectErrors: objects that could not be counted on one replica in 15 minutes ("more than")' },
    },

    // Severity of each alert: critical pages, warning goes to chat, info to a digest.
    severities:: {
      VpcFlowIllegalSourceAccepted: 'critical',
      VpcFlowNatBreach: 'critical',
      VpcFlowNatBreachRejected: 'warning',
      VpcFlowForbiddenPortAccepted: 'critical',
      VpcFlowForbiddenPortRejected: 'info',
      VpcFlowLogSkipData: 'critical',
      VpcFlowLogNoData: 'info',
      VpcFlowTooManyRejects: 'warning',
      VpcFlowRejectsAboveBaseline: 'warning',
      VpcFlowShortConnectionSurge: 'warning',
      VpcFlowInternalPortScan: 'warning',
      VpcFlowPortScan: 'info',
      VpcFlowExporterDown: 'critical',
      VpcFlowExporterCloudWatchPollStale: 'critical',
      VpcFlowExporterCloudWatchNeverPolled: 'critical',
      VpcFlowExporterCloudWatchRequestErrors: 'warning',
      VpcFlowExporterCloudWatchLogGroupDown: 'warning',
      VpcFlowExporterCloudWatchThrottled: 'warning',
      VpcFlowExporterParseErrors: 'warning',
      VpcFlowExporterIngestionDelayNearLookback: 'warning',
      VpcFlowExporterInterfaceCapReached: 'warning',
      VpcFlowExporterInterfaceCapNearing: 'info',
      VpcFlowExporterConfigReloadFailed: 'warning',
      VpcFlowExporterNoRecentFlows: 'warning',
      VpcFlowExporterFirehoseNoDeliveries: 'critical',
      VpcFlowExporterFirehoseAuthFailures: 'warning',
      VpcFlowExporterFirehoseErrors: 'warning',
      VpcFlowExporterFirehoseBusy: 'warning',
      VpcFlowExporterS3NotReceiving: 'critical',
      VpcFlowExporterS3Lagging: 'warning',
      VpcFlowExporterS3ObjectErrors: 'warning',
    },

    runbookUrlBase: 'https://github.com/vpc-flow-exporter/vpc-flow-exporter/blob/main/docs/runbook.md#',

    // Dashboards.
    // A cluster variable on the dashboards (multi-cluster Prometheus setups).
    showMultiCluster: false,
    dashboardTags: ['vpc-flow-exporter', 'vpc-flow', 'aws'],
    dashboardRefresh: '1m',
    dashboardTimeFrom: 'now-6h',
    // Per-interface panels draw the top N interfaces over the time range.
    dashboardTopN: 10,
    // Smallest step of panels over per-interface 10-minute data.
    dashboardMinInterval: '1m',
  },
}
