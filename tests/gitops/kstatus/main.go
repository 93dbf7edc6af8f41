// Command kstatus reads Kubernetes objects as JSON on stdin (a single object
// or a JSON array of objects) and prints, for each object, one JSON line:
//
//	{"status": "<InProgress|Current|Failed|Terminating|NotFound|Unknown>", "message": "..."}
//
// computed with sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, i.e. the
// same library Flux (kustomize-controller `wait`/`healthChecks`) and
// `kubectl`-adjacent tooling use to decide whether a resource is ready.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: reading stdin: %v\n", err)
		os.Exit(2)
	}
	// k8s.io/apimachinery's JSON decoder keeps integers as int64 (encoding/json
	// would make them float64, and unstructured.NestedInt64 -- which kstatus uses
	// for metadata.generation and status.observedGeneration -- rejects float64),
	// exactly as client-go decodes objects read from the API server.
	var doc interface{}
	if err := utiljson.Unmarshal(bytes.TrimSpace(data), &doc); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: decoding JSON: %v\n", err)
		os.Exit(2)
	}
	var objs []map[string]interface{}
	switch d := doc.(type) {
	case map[string]interface{}:
		objs = append(objs, d)
	case []interface{}:
		for i, item := range d {
			m, ok := item.(map[string]interface{})
			if !ok {
				fmt.Fprintf(os.Stderr, "kstatus: item %d is not a JSON object\n", i)
				os.Exit(2)
			}
			objs = append(objs, m)
		}
	default:
		fmt.Fprintln(os.Stderr, "kstatus: stdin must hold a JSON object or an array of objects")
		os.Exit(2)
	}

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for _, obj := range objs {
		var v verdict
		res, err := status.Compute(&unstructured.Unstructured{Object: obj})
		if err != nil {
			v = verdict{Status: string(status.UnknownStatus), Error: err.Error()}
		} else {
			v = verdict{Status: string(res.Status), Message: res.Message}
		}
		if err := enc.Encode(&v); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: encoding: %v\n", err)
			os.Exit(2)
		}
	}
}
