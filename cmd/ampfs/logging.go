package main

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"AMPFS_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Value: "console", Usage: "console or json", EnvVars: []string{"AMPFS_LOG_FORMAT"}},
	}
}

// newLogger builds the process logger from the flags. Log lines go to
// stderr, or to --log-file where a command has it; they never carry
// secrets, tokens or presigned URLs. The level is zerolog's global level,
// so that SIGUSR2 and the control socket can change it at run time
// (setLogLevel).
func newLogger(c *cli.Context, w io.Writer) (zerolog.Logger, error) {
	level, err := parseLogLevel(c.String("log-level"))
	if err != nil {
		return zerolog.Nop(), userErrorf("--log-level %q is not a level: use debug, info, warn or error", c.String("log-level"))
	}
	if path := c.String("log-file"); path != "" {
		f, err := openLogFile(path)
		if err != nil {
			return zerolog.Nop(), userErrorf("--log-file: %v", err)
		}
		w = f
	}
	zerolog.DurationFieldUnit = time.Millisecond
	switch c.String("log-format") {
	case "json":
	case "console":
		f, ok := w.(*os.File)
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !ok || !isatty.IsTerminal(f.Fd())}
	default:
		return zerolog.Nop(), userErrorf("--log-format %q is not a format: use console or json", c.String("log-format"))
	}
	setLogLevel(level)
	return zerolog.New(w).Level(zerolog.DebugLevel).With().Timestamp().Logger(), nil
}
