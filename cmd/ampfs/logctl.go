package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// parseLogLevel accepts the levels --log-level documents.
func parseLogLevel(s string) (zerolog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return zerolog.DebugLevel, nil
	case "info":
		return zerolog.InfoLevel, nil
	case "warn", "warning":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("%q is not a level: use debug, info, warn or error", s)
}

// configuredLevel is the level --log-level asked for; SIGUSR2 toggles
// between debug and it.
var (
	levelMu         sync.Mutex
	configuredLevel = zerolog.InfoLevel // GUARDED_BY(levelMu)
)

// setLogLevel sets the process's log level (zerolog's global level) and
// remembers it as the configured one.
func setLogLevel(l zerolog.Level) {
	levelMu.Lock()
	defer levelMu.Unlock()
	configuredLevel = l
	zerolog.SetGlobalLevel(l)
}

// toggleDebug switches between debug and the configured level (SIGUSR2)
// and returns the new level.
func toggleDebug() zerolog.Level {
	levelMu.Lock()
	defer levelMu.Unlock()
	l := zerolog.DebugLevel
	if zerolog.GlobalLevel() == zerolog.DebugLevel {
		l = configuredLevel
		if l == zerolog.DebugLevel {
			l = zerolog.InfoLevel
		}
	}
	zerolog.SetGlobalLevel(l)
	return l
}

// logFile is the --log-file, reopened by path on SIGHUP so that logrotate
// can move it away (rename, then SIGHUP; no copytruncate needed).
type logFile struct {
	path string

	mu sync.Mutex
	f  *os.File // GUARDED_BY(mu)
}

// openedLogFile is the process's --log-file, if any, for SIGHUP.
var openedLogFile *logFile

func openLogFile(path string) (*logFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	l := &logFile{path: abs}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	openedLogFile = l
	return l, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path again (created 0640 if missing) and closes the old
// file; on error the old file stays in use.
func (l *logFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}
