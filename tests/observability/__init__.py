"""Helpers for proving the Prometheus and Grafana content against real promtool and Prometheus."""
