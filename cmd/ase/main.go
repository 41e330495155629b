// Command ase is the API Security Enforcer: `ase serve` runs the server,
// every other command is the CLI of its management API.
package main

import (
	"os"

	"github.com/ase-project/ase/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
