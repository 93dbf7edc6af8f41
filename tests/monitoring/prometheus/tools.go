//go:build tools

// Package tools pins Prometheus' and promtool's main packages so `go mod tidy` keeps their deps.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
