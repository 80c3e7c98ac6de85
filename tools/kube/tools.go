//go:build tools

// Package kube pins the Kubernetes the tests run (kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet) and etcd, built from their Go modules by scripts/setup.sh.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
