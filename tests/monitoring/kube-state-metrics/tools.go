//go:build tools

// Package tools pins kube-state-metrics' main package so `go mod tidy` keeps its deps.
package tools

import _ "k8s.io/kube-state-metrics/v2"
