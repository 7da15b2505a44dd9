(import "security.libsonnet") + (import "health.libsonnet")
