//go:build tools

// kwok, the fake kubelet of the real-Kubernetes test tier (scripts/control-plane build).
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
