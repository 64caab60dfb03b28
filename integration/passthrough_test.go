package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPassthroughWholeFiles: with a disk cache, a file written through the
// mount, and an object read fully once, are then read with no GET and no
// FUSE READ reaching ampfs (the kernel reads the local copy itself: FUSE
// passthrough), byte for byte; a writer opening a file while a
// passthrough reader has it open works, and later readers see its data.
func TestPassthroughWholeFiles(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	proxy := srv.CountingProxy(t)
	m := mountAmpfs(t, srv.Via(proxy.Endpoint), bucket, "--metrics-addr", "127.0.0.1:0", "--disk-cache-size", "256MiB")
	addr := ""
	for _, l := range logFileLines(t, m.logf) {
		if l["message"] == "serving metrics" {
			addr, _ = l["addr"].(string)
		}
	}
	if addr == "" {
		t.Fatalf("no \"serving metrics\" line with the address")
	}
	counter := func(name string) float64 { return sum(scrape(t, addr)[name], nil) }

	// readLocal reads rel through the mount and checks it is want, read
	// with no GET and no READ reaching ampfs.
	readLocal := func(rel string, want []byte) error {
		gets, reads, opens := proxy.Counts()["GetObject"], counter("ampfs_fuse_reads_total"), counter("ampfs_passthrough_opens_total")
		start := time.Now()
		got, err := os.ReadFile(m.path(rel))
		dur := time.Since(start)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: read %d bytes that differ from the %d expected", rel, len(got), len(want))
		}
		if n := proxy.Counts()["GetObject"] - gets; n != 0 {
			return fmt.Errorf("%s: %d GETs", rel, n)
		}
		if n := counter("ampfs_fuse_reads_total") - reads; n != 0 {
			return fmt.Errorf("%s: %v READs reached ampfs", rel, n)
		}
		if n := counter("ampfs_passthrough_opens_total") - opens; n != 1 {
			return fmt.Errorf("%s: %v passthrough opens", rel, n)
		}
		t.Logf("%s: %d bytes read by the kernel from the local copy in %v", rel, len(got), dur)
		return nil
	}

	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, src, 24<<20)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "cp", src, m.path("written"))
	eventually(t, 20*time.Second, func() error { return readLocal("written", data) })
	if err := readLocal("written", data); err != nil {
		t.Error(err)
	}

	other := bytes.Repeat([]byte("server side\n"), 200000)
	putObject(t, srv, bucket, "fromserver", other)
	if got, err := os.ReadFile(m.path("fromserver")); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("first read: %v", err)
	}
	eventually(t, 20*time.Second, func() error { return readLocal("fromserver", other) })

	// A writer beside a passthrough reader.
	r, err := os.Open(m.path("written"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 4096)
	if _, err := r.ReadAt(head, 0); err != nil || !bytes.Equal(head, data[:4096]) {
		t.Fatalf("reader: %v", err)
	}
	w, err := os.OpenFile(m.path("written"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open for writing beside a passthrough reader: %v", err)
	}
	patch := bytes.Repeat([]byte{'x'}, 1<<20)
	if _, err := w.WriteAt(patch, 1<<20); err != nil {
		t.Fatalf("write beside a passthrough reader: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), data...)
	copy(want[1<<20:], patch)
	if got, err := os.ReadFile(m.path("written")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("a reader after the write does not see it (%v)", err)
	}
	if _, err := r.ReadAt(head, 0); err != nil {
		t.Fatalf("first reader after the write: %v", err)
	}
	r.Close()
	run(t, ampfsBin, "sync", m.dir)
	sum := sha256.Sum256(want)
	if sha, _ := objectSHA256(t, srv, bucket, "written"); sha != hex.EncodeToString(sum[:]) {
		t.Error("the server does not have the written data")
	}
	eventually(t, 20*time.Second, func() error { return readLocal("written", want) })
}
