package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
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
	sweepStaleSockets(dir)
	for name, want := range map[string]bool{"dead.sock": false, "live.sock": true, "notes.sock.txt": true} {
		_, err := os.Lstat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s: present %v, want %v", name, got, want)
		}
	}
}
