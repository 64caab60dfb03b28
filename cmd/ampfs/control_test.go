package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Sockets left by killed mounts (nothing listens) are removed; a live
// one and other files stay.
func TestSweepStaleSockets(t *testing.T) {
	dir := t.TempDir()
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "dead.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false) // as after kill -9: the file stays
	stale.Close()
	live, err := net.Listen("unix", filepath.Join(dir, "live.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := os.WriteFile(filepath.Join(dir, "notes.sock.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	young, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "young.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	young.SetUnlinkOnClose(false) // bound just now, as a mount starting
	young.Close()
	old := time.Now().Add(-time.Minute)
	for _, name := range []string{"dead.sock", "live.sock"} {
		if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	sweepStaleSockets(dir)
	for name, want := range map[string]bool{"dead.sock": false, "live.sock": true, "notes.sock.txt": true, "young.sock": true} {
		_, err := os.Lstat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s: present %v, want %v", name, got, want)
		}
	}
}
