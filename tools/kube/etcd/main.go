// Command etcd is etcd's own server main, built from its Go module (its repository's main
// module carries replace directives that go install refuses).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
