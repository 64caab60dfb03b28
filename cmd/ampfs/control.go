package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/fs"
	"github.com/ampfs/ampfs/store"
)

// The control socket: a unix socket (0600, in a 0700 directory) on which a
// running mount answers 'ampfs url' and 'ampfs log-level'. One JSON request
// line, one JSON response line, then the connection closes.

// controlRequest is one request.
type controlRequest struct {
	Op       string        `json:"op"`             // "url", "log-level"
	Path     string        `json:"path,omitempty"` // url: relative to the mount root
	Expires  time.Duration `json:"expires,omitempty"`
	Download bool          `json:"download,omitempty"`
	Level    string        `json:"level,omitempty"` // log-level: "" reads it
}

// controlResponse is the answer: Error, or the result.
type controlResponse struct {
	Error string `json:"error,omitempty"`
	URL   string `json:"url,omitempty"`
	Level string `json:"level,omitempty"`
	// Uploads answers "status": the uploads not finished yet.
	Uploads []cache.UploadStatus `json:"uploads,omitempty"`
}

// controlSocketPath is where the mount at mountpoint listens: /run/ampfs
// for root, else $XDG_RUNTIME_DIR/ampfs (or /tmp/ampfs-UID), named by a
// hash of the mountpoint, so 'ampfs url' finds it from any path inside.
func controlSocketPath(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	return filepath.Join(runtimeDir(), hex.EncodeToString(sum[:8])+".sock")
}

func runtimeDir() string {
	if os.Geteuid() == 0 {
		return "/run/ampfs"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "ampfs")
	}
	return filepath.Join(os.TempDir(), "ampfs-"+strconv.Itoa(os.Geteuid()))
}

type controlServer struct {
	ln   net.Listener
	path string
	wg   sync.WaitGroup
}

// listenControl listens at path, replacing a stale socket (the mountpoint
// was checked to be free, so no live mount owns it).
func listenControl(path string, h *controlHandler) (*controlServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		_ = os.Remove(path)
	}
	sweepStaleSockets(filepath.Dir(path))
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s := &controlServer{ln: ln, path: path}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				h.serve(c)
			}()
		}
	}()
	return s, nil
}

// staleSocketAge: a socket younger than this is never swept.
const staleSocketAge = 10 * time.Second

// sweepStaleSockets removes the sockets in dir that nothing listens on:
// those of mounts that were killed (kill -9, a crash) and could not
// remove their own. A socket whose dial is refused has no listener; any
// other answer (it accepts, or the dial times out) leaves it alone.
func sweepStaleSockets(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Type()&os.ModeSocket == 0 || filepath.Ext(e.Name()) != ".sock" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		// A socket bound a moment ago may not be listening yet (another
		// mount starting): only old ones are candidates.
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < staleSocketAge {
			continue
		}
		c, err := net.DialTimeout("unix", p, 100*time.Millisecond)
		if err == nil {
			c.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			_ = os.Remove(p)
		}
	}
}

// Close stops listening, removes the socket and waits for requests in
// flight.
func (s *controlServer) Close() {
	s.ln.Close() // removes the socket file too (net.UnixListener unlinks)
	s.wg.Wait()
}

type controlHandler struct {
	fsys      *fs.FS
	bucket    store.Bucket
	presigner *presigner
	log       zerolog.Logger
}

func (h *controlHandler) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var req controlRequest
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var resp controlResponse
	if err != nil {
		resp.Error = "bad request: " + err.Error()
	} else {
		resp = h.handle(req)
	}
	b, _ := json.Marshal(resp)
	_, _ = c.Write(append(b, '\n'))
}

func (h *controlHandler) handle(req controlRequest) controlResponse {
	switch req.Op {
	case "url":
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		key, readable := h.fsys.KeyOf(req.Path)
		switch {
		case key == "":
			return controlResponse{Error: "not a file in the bucket"}
		case !readable:
			return controlResponse{Error: "permission denied: the storage rules do not let this user read it"}
		}
		if _, err := h.bucket.Head(ctx, key); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return controlResponse{Error: "not on the server yet (staged changes upload when the file is closed)"}
			}
			return controlResponse{Error: err.Error()}
		}
		u, err := h.presigner.presign(ctx, key, req.Expires, req.Download, false)
		if err != nil {
			return controlResponse{Error: err.Error()}
		}
		// The URL is a bearer credential: never logged.
		h.log.Info().Str("op", "url").Str("key", key).Dur("expires", req.Expires).Msg("presigned a URL")
		return controlResponse{URL: u}
	case "status":
		return controlResponse{Uploads: h.fsys.Uploads()}
	case "log-level":
		if req.Level != "" {
			l, err := parseLogLevel(req.Level)
			if err != nil {
				return controlResponse{Error: err.Error()}
			}
			setLogLevel(l)
			h.log.WithLevel(zerolog.WarnLevel).Str("level", l.String()).Msg("log level changed (control socket)")
		}
		return controlResponse{Level: zerolog.GlobalLevel().String()}
	}
	return controlResponse{Error: fmt.Sprintf("unknown op %q", req.Op)}
}

// controlCall sends one request to the mount at mountpoint.
func controlCall(socket string, req controlRequest) (controlResponse, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return controlResponse{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return controlResponse{}, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return controlResponse{}, err
	}
	var resp controlResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return controlResponse{}, err
	}
	return resp, nil
}
