// PromQL building blocks shared by the rules and the dashboards.
{
  // "cluster, job" (the cluster label left out when it is '').
  keep(c):: std.join(', ', std.filter(function(l) l != '', [c.clusterLabel, 'job'])),
  // keep(c) plus more labels.
  by(c, extra):: std.join(', ', std.filter(function(l) l != '', [c.clusterLabel, 'job'] + extra)),
  // A selector: {<vpcFlowSelector>, <extra>}.
  sel(c, extra=''):: '{' + c.vpcFlowSelector + (if extra != '' then ', ' + extra else '') + '}',

  // Records counted by one counter series in the window, exactly: the rise
  // since the oldest sample of the window (no extrapolation, so 4 records
  // read 4), or increase() across a counter reset (an exporter restart).
  // A new series starts at 0 (the exporter's --metrics.new-series-hold), so
  // its whole count is in the window. With HA pairs, the max of the pair.
  countIn(c, metric, extra=''):: (
    local s = metric + $.sel(c, extra);
    local inner = |||
      (%(s)s - min_over_time(%(s)s[%(w)s]))
        unless resets(%(s)s[%(w)s]) > 0
      or
      increase(%(s)s[%(w)s])
    ||| % { s: s, w: c.window };
    if c.haPairs then 'max without (instance) (\n' + inner + ')' else inner
  ),

  // An instant gauge, the max of each HA pair when configured.
  gauge(c, metric, extra=''):: (
    local s = metric + $.sel(c, extra);
    if c.haPairs then 'max without (instance) (' + s + ')' else s
  ),

  // `expr op threshold`, where the threshold is the interface's own
  // vpc_flow_alert_threshold{threshold=name, interface_id=...} if there is
  // one, else the default vpc_flow_alert_threshold{threshold=name}.
  perInterface(expr, op, name):: |||
    %(expr)s
      %(op)s on (interface_id) group_left ()
    (
        max by (interface_id) (vpc_flow_alert_threshold{threshold="%(name)s", interface_id!=""})
      or
        max by (interface_id) (%(expr)s) * 0
          + scalar(vpc_flow_alert_threshold{threshold="%(name)s", interface_id=""})
    )
  ||| % { expr: $.trim(expr), op: op, name: name },

  // A string without its trailing newlines.
  trim(s):: if std.length(s) > 0 && s[std.length(s) - 1] == '\n' then $.trim(std.substr(s, 0, std.length(s) - 1)) else s,

  threshold(name):: 'scalar(vpc_flow_alert_threshold{threshold="%s", interface_id=""})' % name,

  // Minutes of a duration written as Nm or Nh.
  minutes(d):: (
    local n = std.parseInt(std.substr(d, 0, std.length(d) - 1));
    local u = std.substr(d, std.length(d) - 1, 1);
    if u == 'm' then n else if u == 'h' then n * 60 else error 'duration ' + d + ': use m or h'
  ),
}
