package main

import (
	"io"
	"os"
	"strings"
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
// stderr; they never carry secrets, tokens or presigned URLs.
func newLogger(c *cli.Context, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(strings.ToLower(c.String("log-level")))
	if err != nil || level == zerolog.NoLevel {
		return zerolog.Nop(), userErrorf("--log-level %q is not a level: use debug, info, warn or error", c.String("log-level"))
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
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
