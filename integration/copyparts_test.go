package integration

// Changes to existing objects (issue 7): an append or an overwrite sends
// what changed and has the server copy the rest (UploadPartCopy); when the
// old object is gone by the time of the upload (a rename in write-back
// mode deletes it), everything is sent from the staging file.

import (
	"crypto/rand"
	"fmt"
	"testing"
)

// appendLine appends line to path through the shell's >>.
func appendLine(t *testing.T, path, line string) {
	t.Helper()
	run(t, "sh", "-c", `printf '%s' "$1" >> "$2"`, "sh", line, path)
}

// TestAppendCopiesUntouched: `>>` to a 40 MiB object uploads the appended
// line and copies the 40 MiB on the server, twice in a row (the second
// copies from the object the first stored); the object is right each time.
func TestAppendCopiesUntouched(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	proxy := srv.CountingProxy(t)
	m := mountAmpfs(t, srv.Via(proxy.Endpoint), bucket, "--log-level", "debug")
	data := make([]byte, 40<<20)
	rand.Read(data)
	putObject(t, srv, bucket, "log.bin", data)
	for i := range 2 {
		proxy.Reset()
		line := fmt.Sprintf("appended line %d through the mount\n", i)
		appendLine(t, m.path("log.bin"), line)
		data = append(data, line...)
		if got, size := objectSHA256(t, srv, bucket, "log.bin"); got != sha(data) || size != int64(len(data)) {
			t.Fatalf("append %d: the object has %d bytes (sha256 %s), want %d (%s)", i, size, got, len(data), sha(data))
		}
		counts, bytes := proxy.Counts(), proxy.Bytes()
		sent := bytes["UploadPart"] + bytes["PutObject"]
		t.Logf("append %d: requests %v; body bytes %v", i, counts, bytes)
		if counts["UploadPartCopy"] == 0 || sent > 1<<20 {
			t.Errorf("append %d of %d bytes to 40 MiB: %d copies, %d bytes sent", i, len(line), counts["UploadPartCopy"], sent)
		}
	}
}

// TestRenameAfterAppendWriteBack: in write-back mode a file appended to
// and renamed before its upload (held back by --settle) goes up under the
// new name after the old object is deleted; the copies from the old key
// fail and everything is sent, byte for byte.
func TestRenameAfterAppendWriteBack(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	proxy := srv.CountingProxy(t)
	m := mountAmpfs(t, srv.Via(proxy.Endpoint), bucket, append(writeBack, "--settle", "5s", "--log-level", "debug")...)
	data := make([]byte, 40<<20)
	rand.Read(data)
	putObject(t, srv, bucket, "a.bin", data)
	appendLine(t, m.path("a.bin"), "one more line\n")
	data = append(data, "one more line\n"...)
	proxy.Reset()
	run(t, "mv", m.path("a.bin"), m.path("b.bin"))
	run(t, ampfsBin, "sync", m.dir)
	if got, size := objectSHA256(t, srv, bucket, "b.bin"); got != sha(data) || size != int64(len(data)) {
		t.Fatalf("b.bin has %d bytes (sha256 %s), want %d (%s)", size, got, len(data), sha(data))
	}
	if keys := listKeys(t, srv, bucket, ""); len(keys) != 1 || keys[0] != "b.bin" {
		t.Errorf("keys %v, want b.bin only", keys)
	}
	counts, bytes := proxy.Counts(), proxy.Bytes()
	t.Logf("requests %v; body bytes %v", counts, bytes)
	if sent := bytes["UploadPart"]; sent != int64(len(data)) {
		t.Errorf("%d bytes sent in parts, want all %d", sent, len(data))
	}
}
