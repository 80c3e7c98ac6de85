//go:build tools

// Package s3 pins the S3-compatible server the shared-store tests run against (SeaweedFS's
// `weed`, Apache-2.0), built from its Go module by scripts/setup.sh.
package s3

import (
	_ "github.com/seaweedfs/seaweedfs/weed"
)
