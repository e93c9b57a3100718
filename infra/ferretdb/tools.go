//go:build tools

// Package tools pins FerretDB (1.x, embedded SQLite backend) as a build dependency.
// `go install` runs from this module with -mod=vendor because the published module
// lacks the generated build/version/version.txt that FerretDB's own release build writes.
package tools

import _ "github.com/FerretDB/FerretDB/cmd/ferretdb"
