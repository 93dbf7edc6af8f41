//go:build tools

// Package tools pins helm's main package so `go mod tidy` keeps its deps.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
