//go:build tools

// Pins the commands scripts/build-images.sh builds (go build github.com/moby/buildkit/cmd/...).
package tools

import (
	_ "github.com/moby/buildkit/cmd/buildctl"
	_ "github.com/moby/buildkit/cmd/buildkitd"
)
