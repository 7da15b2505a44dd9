// The vpc-flow-exporter monitoring mixin: alerts, recording rules and
// dashboards generated from one _config (config.libsonnet).
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
