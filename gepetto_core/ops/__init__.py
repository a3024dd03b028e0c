"""Operations: the health/metrics HTTP server, Prometheus metrics, and log configuration."""
