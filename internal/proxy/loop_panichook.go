//go:build linux && !ase_portable

package proxy

import "os"

// testPanicPath is a request path the event loops panic on, so that the
// end-to-end tests can show what a panic while serving one connection
// does (a 500 for that client, that connection closed, every other one
// served on). It is set only by the test-only environment variable
// ASE_TEST_PANIC_PATH, read once at start; unset, it is empty and no
// request panics.
var testPanicPath = os.Getenv("ASE_TEST_PANIC_PATH")
