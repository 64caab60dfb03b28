package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// StoredSession is what `ampfs login` keeps between runs: enough to get
// fresh credentials without the password. The file holds a refresh token,
// so it is readable by its owner only (0600, in a 0700 directory).
type StoredSession struct {
	Pool         Pool      `json:"pool"`
	Username     string    `json:"username"`
	IdentityID   string    `json:"identity_id"`
	RefreshToken string    `json:"refresh_token"`
	SignedIn     time.Time `json:"signed_in"`

	path string
}

// ErrNoSession means nobody is signed in (for this pool).
var ErrNoSession = errors.New("nobody is signed in: run 'ampfs login --config amplify_outputs.json' first")

// SessionDir is where sessions are kept: $XDG_CONFIG_HOME/ampfs/sessions
// (~/.config/ampfs/sessions).
func SessionDir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (%v): set HOME or XDG_CONFIG_HOME", err)
	}
	return filepath.Join(base, "ampfs", "sessions"), nil
}

// fileName keeps one file per pool and user, with a name that cannot
// leave the directory whatever the username.
func fileName(poolID, username string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '@':
				return r
			}
			return '%'
		}, s)
	}
	return clean(poolID) + "_" + strings.TrimLeft(clean(username), ".") + ".json"
}

// Save writes s atomically with mode 0600.
func (s *StoredSession) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".session-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	s.path = filepath.Join(dir, fileName(s.Pool.UserPoolID, s.Username))
	return os.Rename(tmp.Name(), s.path)
}

// Delete removes the session's file.
func (s *StoredSession) Delete() error {
	if s.path == "" {
		return errors.New("session has no file")
	}
	return os.Remove(s.path)
}

// Path is the session's file.
func (s *StoredSession) Path() string { return s.path }

// LoadSessions reads every session in dir. A file others may read is
// refused: a refresh token there may already have leaked.
func LoadSessions(dir string) ([]*StoredSession, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*StoredSession
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s is readable by others (mode %o): delete it and run 'ampfs login' again", p, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var s StoredSession
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		s.path = p
		out = append(out, &s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// FindSession picks the session for a pool (any when poolID is "") and
// user (any when username is ""); it fails when none or several match.
func FindSession(dir, poolID, username string) (*StoredSession, error) {
	all, err := LoadSessions(dir)
	if err != nil {
		return nil, err
	}
	var match []*StoredSession
	var names []string
	for _, s := range all {
		if (poolID == "" || s.Pool.UserPoolID == poolID) && (username == "" || s.Username == username) {
			match = append(match, s)
			names = append(names, s.Username)
		}
	}
	switch len(match) {
	case 0:
		if username != "" {
			return nil, fmt.Errorf("%s is not signed in: run 'ampfs login' first", username)
		}
		return nil, ErrNoSession
	case 1:
		return match[0], nil
	default:
		return nil, fmt.Errorf("several users are signed in (%s): choose one with --user", strings.Join(names, ", "))
	}
}
