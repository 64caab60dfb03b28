// Command ampfs mounts an S3 bucket as a local file system.
//
// main.go is the wiring, top to bottom: flags → config → store → cache →
// fs.Mount → wait → drain → unmount. Each command lives in its own file.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=..."; else
// it comes from the module's build info.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func main() {
	args := os.Args
	if isHelper(args[0]) {
		// mount(8) calls mount.ampfs SOURCE DIR -o OPTIONS.
		converted, fake, err := helperArgs(args[1:], mountCommand().Flags)
		if err != nil {
			fmt.Fprintln(os.Stderr, oneLine(err))
			os.Exit(1)
		}
		if fake {
			os.Exit(0)
		}
		args = append([]string{"ampfs"}, converted...)
	}
	runArgs = args[1:]
	app := &cli.App{
		Name:    "ampfs",
		Usage:   "mount Amplify Storage (an S3 bucket) as a local file system",
		Version: versionString(),
		Commands: []*cli.Command{
			mountCommand(),
			unmountCommand(),
			loginCommand(),
			logoutCommand(),
			whoamiCommand(),
			statusCommand(),
			syncCommand(),
			urlCommand(),
			logLevelCommand(),
		},
		// Errors are printed once, as one line, by main below.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	if err := app.Run(args); err != nil {
		daemonFailed(err) // a daemon's parent prints it
		fmt.Fprintln(os.Stderr, oneLine(err))
		code := 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		os.Exit(code)
	}
}

// userError is a failure the user can fix: its text says what is wrong and
// what to do, and is printed as it is.
type userError struct {
	msg  string
	code int
}

func (e *userError) Error() string { return e.msg }
func (e *userError) ExitCode() int { return e.code }

func userErrorf(format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...), code: 1}
}

// oneLine formats an error as the single line a user sees.
func oneLine(err error) string {
	msg := err.Error()
	for i, r := range msg {
		if r == '\n' {
			msg = msg[:i]
			break
		}
	}
	return "ampfs: " + msg
}
