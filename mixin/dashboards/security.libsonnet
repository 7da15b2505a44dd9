// The "VPC Flow / Security overview" dashboard. Per-interface panels draw the
// top N interfaces over the time range (`@ end()`), so they stay readable and
// fast at 10,000 interfaces.
local g = import '../lib/grafana.libsonnet';

{
  local c = $._config,
  local n = c.dashboardTopN,
  local mi = c.dashboardMinInterval,
  local cl = if c.showMultiCluster then ', %s=~"$cluster"' % c.clusterLabel else '',
  local f = 'job=~"$job"' + cl,
  local fi = f + ', interface_id=~"$interface"',
  local th(name) = ['vpc_flow_alert_threshold{threshold="%s", interface_id=""}' % name, 'threshold'],

  // `expr` for the N interfaces with the highest `rank` over the range.
  local topOver(expr, rank) =
    '%s\n  and on (interface_id)\ntopk(%d, max by (interface_id) (%s))' % [expr, n, rank],
  // A recorded per-interface count, limited to the top N over the range.
  local topRec(rec, extra='') = (
    local s = '%s{%s%s}' % [rec, fi, extra];
    topOver(s, 'max_over_time(%s[$__range] @ end())' % s)
  ),

  local records = 'suffix: records',
  local rps = 'suffix: records/s',

  grafanaDashboards+:: {
    'vpc-flow-security.json': g.dashboard(
      c,
      'vpc-flow-security',
      'VPC Flow / Security overview',
      'Accept/reject traffic, top rejected sources and destinations, port scans, source countries and one panel per vpc-flow-exporter alert.',
      (if c.showMultiCluster then [g.variable('cluster', 'Cluster', 'label_values(vpc_flow_exporter_build_info, %s)' % c.clusterLabel)] else []) + [
        g.variable('job', 'Job', 'label_values(vpc_flow_exporter_build_info%s, job)' % (if c.showMultiCluster then '{%s=~"$cluster"}' % c.clusterLabel else '')),
        g.variable('interface', 'Interface', 'label_values(vpc_flow_records_total{%s}, interface_id)' % f, allValue='.*'),
      ],
      [
        g.row('Overview', [
          g.stat('Records/s', 'Traffic records per second on the selected interfaces.', g.targets([
            ['sum(rate(vpc_flow_records_total{%s}[$__rate_interval]))' % fi, 'records/s'],
          ]), rps, w=6),
          g.stat('Reject ratio', 'Share of traffic records that were rejected.', g.targets([
            ['sum(rate(vpc_flow_records_total{%s, action="REJECT"}[$__rate_interval])) / sum(rate(vpc_flow_records_total{%s}[$__rate_interval]))' % [fi, fi], 'reject ratio'],
          ]), 'percentunit', w=6),
          g.stat('Port-scan sources', 'Sources whose distinct rejected ports, summed over replicas, reach the port-scan threshold (as VpcFlowPortScan and VpcFlowInternalPortScan judge them; all interfaces).', g.targets([
            ['count(srcaddr:vpc_flow_top_port_scanners:sum{%s} >= on () group_left () vpc_flow_alert_threshold{threshold="port_scan_min_distinct_ports", interface_id=""}) or vector(0)' % f, 'sources'],
          ]), w=6),
          g.stat('Alerts firing', 'VpcFlow alerts firing now.', g.targets([
            ['count(ALERTS{alertname=~"VpcFlow.*", alertstate="firing"}) or vector(0)', 'alerts'],
          ]), w=6),
        ]),
        g.row('Traffic', [
          g.timeseries('Accept / reject ratio', 'Shares of accepted and rejected traffic records (stacked).', g.targets([
            ['sum(rate(vpc_flow_records_total{%s, action="ACCEPT"}[$__rate_interval])) / sum(rate(vpc_flow_records_total{%s}[$__rate_interval]))' % [fi, fi], 'ACCEPT'],
            ['sum(rate(vpc_flow_records_total{%s, action="REJECT"}[$__rate_interval])) / sum(rate(vpc_flow_records_total{%s}[$__rate_interval]))' % [fi, fi], 'REJECT'],
          ]), 'percentunit', interval=mi, stack=true),
          g.timeseries('Records/s by action', 'Traffic records per second by action.', g.targets([
            ['sum by (action) (rate(vpc_flow_records_total{%s}[$__rate_interval]))' % fi, '{{action}}'],
          ]), rps, interval=mi),
          g.timeseries('Packets/s', 'Packets per second of traffic records.', g.targets([
            ['sum(rate(vpc_flow_packets_total{%s}[$__rate_interval]))' % fi, 'packets/s'],
          ]), 'pps', interval=mi),
          g.timeseries('Bytes/s', 'Bytes per second of traffic records.', g.targets([
            ['sum(rate(vpc_flow_bytes_total{%s}[$__rate_interval]))' % fi, 'bytes/s'],
          ]), 'Bps', interval=mi),
          g.timeseries('Rejects/s, top %d interfaces' % n, 'Rejected records per second of the %d interfaces that rejected the most over the time range.' % n, g.targets([
            [topOver(
              'sum by (interface_id) (rate(vpc_flow_records_total{%s, action="REJECT"}[$__rate_interval]))' % fi,
              'sum by (interface_id) (increase(vpc_flow_records_total{%s, action="REJECT"}[$__range] @ end()))' % fi
            ), '{{interface_id}}'],
          ]), rps, w=24, interval=mi),
          g.piechart('Protocol distribution', 'Traffic records by IP protocol over the time range (all interfaces).', g.targets([
            ['sum by (protocol) (increase(vpc_flow_protocol_records_total{%s}[$__range]))' % f, '{{protocol}}'],
          ], instant=true)),
          g.bargauge('Watched destination ports', 'Traffic records by destination port (the watch_ports; others as "other") over the time range.', g.targets([
            ['sum by (dstport) (increase(vpc_flow_dstport_records_total{%s}[$__range]))' % f, '{{dstport}}'],
          ], instant=true)),
          g.timeseries('Records/s by protocol', 'Traffic records per second by protocol and action (all interfaces).', g.targets([
            ['sum by (protocol, action) (rate(vpc_flow_protocol_records_total{%s}[$__rate_interval]))' % f, '{{protocol}} {{action}}'],
          ]), rps, w=8, interval=mi),
        ]),
        g.row('Sources and destinations', [
          g.table('Top 25 rejected sources', 'Source addresses with the most REJECT records in the top-K window (detections.top_k), summed over replicas.',
                  'topk(25, sum by (srcaddr) (vpc_flow_top_rejected_sources{%s}))' % f, { srcaddr: 'Source', Value: 'Rejected records' }, 'Rejected records'),
          g.table('Top 25 rejected destinations', 'Destination addresses with the most REJECT records in the top-K window, summed over replicas.',
                  'topk(25, sum by (dstaddr) (vpc_flow_top_rejected_destinations{%s}))' % f, { dstaddr: 'Destination', Value: 'Rejected records' }, 'Rejected records'),
          g.table('Port scanners', 'Distinct rejected destination ports per source in the port-scan window, summed over replicas (an upper bound when shards share a scanner; see docs/alerts.md).',
                  'topk(25, srcaddr:vpc_flow_top_port_scanners:sum{%s})' % f, { srcaddr: 'Source', Value: 'Distinct ports' }, 'Distinct ports'),
          g.geomap('Sources by country', 'Traffic records by the ISO country code of the source address over the time range (needs geoip.database; private and unknown addresses left out).', g.targets([
            ['sum by (country) (increase(vpc_flow_source_country_records_total{%s, country!~"private|unknown"}[$__range]))' % f, '{{country}}'],
          ], instant=true, format='table')),
          g.table('Records by source country and action', 'Traffic records by source country (ISO code, or private/unknown) and action over the time range.',
                  'sum by (country, action) (increase(vpc_flow_source_country_records_total{%s}[$__range]))' % f, { country: 'Country', action: 'Action', Value: 'Records' }, 'Records', w=12),
        ]),
        g.row('Detections (one panel per alert, top %d interfaces over the range)' % n, [
          g.timeseries('Illegal source accepts (10m) - VpcFlowIllegalSourceAccepted', 'Records accepted from sources outside allowed_source_cidrs, per interface over 10 minutes (recording rule).', g.targets([
            [topRec('interface_id:vpc_flow_illegal_source_accepts:increase10m'), '{{interface_id}}'],
          ]), records, interval=mi),
          g.timeseries('Rejected records (10m) - VpcFlowTooManyRejects', 'REJECT records per interface over 10 minutes, against the default threshold (interfaces may have their own).', g.targets([
            [topRec('interface_id:vpc_flow_rejected_records:increase10m'), '{{interface_id}}'],
            th('rejected_records_10m'),
          ]), records, interval=mi, threshold=true),
          g.timeseries('Rejected records vs baseline - VpcFlowRejectsAboveBaseline', 'REJECT records per interface over 10 minutes and its seasonal baseline (the usual at this time of day) times the factor; the alert also needs the floor.', g.targets([
            [topRec('interface_id:vpc_flow_rejected_records:increase10m'), '{{interface_id}}'],
            [topOver(
              'interface_id:vpc_flow_rejected_records:increase10m_baseline{%s} * scalar(vpc_flow_alert_threshold{threshold="rejects_baseline_factor", interface_id=""})' % fi,
              'max_over_time(interface_id:vpc_flow_rejected_records:increase10m{%s}[$__range] @ end())' % fi
            ), '{{interface_id}} baseline x factor'],
          ]), records, interval=mi),
          g.timeseries('SYN+FIN short connections (10m) vs baseline - VpcFlowShortConnectionSurge', 'TCP records with SYN and FIN set per interface over 10 minutes, and the seasonal baseline times the factor.', g.targets([
            [topRec('interface_id:vpc_flow_short_connections:increase10m'), '{{interface_id}}'],
            [topOver(
              'interface_id:vpc_flow_short_connections:increase10m_baseline{%s} * scalar(vpc_flow_alert_threshold{threshold="short_connections_baseline_factor", interface_id=""})' % fi,
              'max_over_time(interface_id:vpc_flow_short_connections:increase10m{%s}[$__range] @ end())' % fi
            ), '{{interface_id}} baseline x factor'],
          ]), records, interval=mi),
          g.timeseries('Unapproved destinations (10m) - VpcFlowNatBreach, VpcFlowNatBreachRejected', 'Records whose pkt-dstaddr is outside approved_destination_cidrs, per interface and action over 10 minutes.', g.targets([
            [topRec('interface_id_action:vpc_flow_unapproved_destination_records:increase10m'), '{{interface_id}} {{action}}'],
          ]), records, interval=mi),
          g.timeseries('Forbidden destination ports (10m) - VpcFlowForbiddenPortAccepted, VpcFlowForbiddenPortRejected', 'Records to forbidden ports per interface, port and action over 10 minutes.', g.targets([
            [topRec('interface_id_dstport_action:vpc_flow_forbidden_port_records:increase10m'), '{{interface_id}} :{{dstport}} {{action}}'],
            th('forbidden_port_rejected_10m'),
          ]), records, interval=mi, threshold=true),
          g.timeseries('NODATA / SKIPDATA records (10m) - VpcFlowLogNoData, VpcFlowLogSkipData', 'NODATA and SKIPDATA records per interface over 10 minutes.', g.targets([
            [topRec('interface_id_log_status:vpc_flow_log_status_records:increase10m'), '{{interface_id}} {{log_status}}'],
          ]), records, interval=mi),
          g.timeseries('Port scanners - VpcFlowPortScan, VpcFlowInternalPortScan', 'Distinct rejected ports per source, summed over replicas, against the threshold.', g.targets([
            ['topk(%d, srcaddr:vpc_flow_top_port_scanners:sum{%s})' % [n, f], '{{srcaddr}}'],
            th('port_scan_min_distinct_ports'),
          ]), 'short', interval=mi, threshold=true),
          g.table('Firing VpcFlow alerts', 'Every VpcFlow alert firing now, with its labels.',
                  'ALERTS{alertname=~"VpcFlow.*", alertstate="firing"}', { alertname: 'Alert' }, 'Alert', w=24),
        ]),
      ],
    ),
  },
}
