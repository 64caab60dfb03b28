package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMountHelper: mount(8) runs mount.ampfs with fstab-style options, the
// daemon stays behind the mount, umount(8) ends it; a server that cannot
// be reached makes mount(8) fail with the daemon's error in time.
func TestMountHelper(t *testing.T) {
	installHelper(t)
	srv, bucket := startServer(t)

	t.Run("mount and umount", func(t *testing.T) {
		tmp := t.TempDir()
		dir, cache, logf := filepath.Join(tmp, "mnt"), filepath.Join(tmp, "cache"), filepath.Join(tmp, "ampfs.log")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		opts := strings.Join([]string{
			"_netdev", "nofail", "x-systemd.automount", "noatime", "rw",
			"endpoint=" + srv.Endpoint, "path-style", "layout=raw",
			"cache-dir=" + cache, "log-file=" + logf, "log-format=json", "metadata-ttl=1s",
		}, ",")
		cmd := exec.Command("mount", "-t", "ampfs", "-o", opts, bucket, dir)
		cmd.Env = append(os.Environ(), srv.Env()...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Cleanup(func() {
			if ms, _ := mountsAt(dir); len(ms) > 0 {
				t.Errorf("%s still mounted at the end", dir)
				forceUnmount(dir)
			}
			waitGone(t, dir, exitTimeout)
			checkLogFile(t, logf)
		})
		if err != nil {
			t.Fatalf("mount -t ampfs: %v: %s", err, out)
		}
		t.Logf("mount(8) returned after %v", time.Since(start).Round(time.Millisecond))
		// Ready when mount(8) returns: no polling.
		ms, err := mountsAt(dir)
		if err != nil || len(ms) == 0 || ms[0].fstype != "fuse.ampfs" || ms[0].source != "ampfs:"+bucket {
			t.Fatalf("after mount(8): %+v, %v", ms, err)
		}
		if !hasLine(t, logf, "info", "mounted") {
			t.Errorf("no \"mounted\" line in the log file")
		}
		if len(pidsWithArg(dir)) != 1 {
			t.Errorf("daemon processes: %v, want one", pidsWithArg(dir))
		}
		src := filepath.Join(tmp, "src")
		sum := writeRandom(t, src, 100<<10)
		run(t, "cp", src, filepath.Join(dir, "a.bin"))
		run(t, ampfsBin, "sync", dir) // close returns before the upload (write-back)
		if got, _ := objectSHA256(t, srv, bucket, "a.bin"); got != sum {
			t.Errorf("a.bin on S3 differs")
		}
		run(t, "umount", dir)
		waitGone(t, dir, exitTimeout)
		if ms, _ := mountsAt(dir); len(ms) > 0 {
			t.Fatalf("still mounted after umount")
		}
		if !hasLine(t, logf, "info", "unmounted") {
			t.Errorf("no \"unmounted\" line in the log file")
		}
	})

	t.Run("unreachable server", func(t *testing.T) {
		tmp := t.TempDir()
		dir := filepath.Join(tmp, "mnt")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		endpoint := "http://" + closedPort(t)
		cmd := exec.Command("mount", "-t", "ampfs", "-o",
			"endpoint="+endpoint+",path-style,layout=raw,cache-dir="+filepath.Join(tmp, "cache"), bucket, dir)
		cmd.Env = append(os.Environ(), srv.Env()...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		t.Cleanup(func() { waitGone(t, dir, exitTimeout) })
		if err == nil {
			forceUnmount(dir)
			t.Fatalf("mount against %s succeeded: %s", endpoint, out)
		}
		if took > 10*time.Second {
			t.Errorf("mount(8) took %v to fail, want under 10 s", took)
		}
		msg := strings.TrimSpace(string(out))
		if !strings.HasPrefix(msg, "ampfs: ") || strings.Count(msg, "\n") > 0 || !strings.Contains(msg, strings.TrimPrefix(endpoint, "http://")) {
			t.Errorf("mount(8) said %q; want the daemon's one-line error naming %s", msg, endpoint)
		}
		t.Logf("after %v: %s", took.Round(time.Millisecond), msg)
		if ms, _ := mountsAt(dir); len(ms) > 0 {
			forceUnmount(dir)
			t.Errorf("mounted although it failed")
		}
	})

	t.Run("bad option", func(t *testing.T) {
		dir := t.TempDir()
		out, err := exec.Command("mount", "-t", "ampfs", "-o", "frobnicate", bucket, dir).CombinedOutput()
		if err == nil || !strings.Contains(string(out), `unknown option "frobnicate"`) {
			t.Errorf("mount -o frobnicate: %v: %s", err, out)
		}
	})
}

// checkLogFile fails for error lines, panics and races in a --log-file.
func checkLogFile(t *testing.T, path string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	for _, l := range unexpectedLogLines(string(b), nil) {
		t.Errorf("unexpected log line in %s: %s", path, l)
	}
	if t.Failed() {
		t.Logf("log file %s:\n%s", path, tail(string(b), 32<<10))
	}
}

// TestSystemdNotify: with $NOTIFY_SOCKET the mount says READY=1 once it is
// mounted and STOPPING=1 when SIGTERM makes it upload and unmount.
func TestSystemdNotify(t *testing.T) {
	n := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", n.path)
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)
	eventually(t, 5*time.Second, func() error {
		if !n.has("READY=1") {
			return fmt.Errorf("no READY=1 after mounting; got %q", n.messages())
		}
		return nil
	})
	if n.has("STOPPING=1") {
		t.Errorf("STOPPING=1 before the stop")
	}
	m.stop(syscall.SIGTERM)
	if !n.has("STOPPING=1") {
		t.Errorf("no STOPPING=1 on SIGTERM; got %q", n.messages())
	}
}

// TestSystemdUnit: contrib/systemd/ampfs@.service passes systemd-analyze
// verify (with ExecStart pointing at the binary under test).
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("../contrib/systemd/ampfs@.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "ExecStop=", "ExecStart=/usr/local/bin/ampfs mount"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit has no %q", want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ampfs@demo.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/ampfs"), []byte(ampfsBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	// Lines about other units on this machine are not ours.
	var ours []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(l, "ampfs") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestURL: 'ampfs url' prints a presigned URL that curl can fetch until it
// expires; --download names the file; too long an expiry is refused; the
// URL is also the user.ampfs.url xattr and never appears in the log.
func TestURL(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket)
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, src, 300<<10)
	if err := os.MkdirAll(m.path("docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", src, m.path("docs/report.pdf"))

	u := strings.TrimSpace(run(t, ampfsBin, "url", "--expires", "3s", m.path("docs/report.pdf")))
	if !strings.HasPrefix(u, srv.Endpoint+"/"+bucket+"/docs/report.pdf?") || !strings.Contains(u, "X-Amz-Expires=3") {
		t.Fatalf("ampfs url printed %q", u)
	}
	got := filepath.Join(t.TempDir(), "got")
	signed := time.Now()
	run(t, "curl", "-sSf", "-o", got, u)
	run(t, "cmp", src, got)

	headers := run(t, "curl", "-sSf", "-o", "/dev/null", "-D", "-",
		strings.TrimSpace(run(t, ampfsBin, "url", "--download", m.path("docs/report.pdf"))))
	if !regexp.MustCompile(`(?i)content-disposition: attachment; filename="report.pdf"`).MatchString(headers) {
		t.Errorf("--download: no attachment header in\n%s", headers)
	}

	// The xattr is the same kind of URL.
	buf := make([]byte, 4096)
	n, err := syscall.Getxattr(m.path("docs/report.pdf"), "user.ampfs.url", buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), srv.Endpoint+"/"+bucket+"/docs/report.pdf?") {
		t.Errorf("user.ampfs.url: %q, %v", buf[:max(n, 0)], err)
	}

	for _, c := range []struct{ args, want string }{
		{"--expires 200h docs/report.pdf", "7 days"},
		{"docs/missing.pdf", "no such file"},
		{"docs", "is a directory"},
	} {
		args := strings.Fields(c.args)
		args[len(args)-1] = m.path(args[len(args)-1])
		out, err := runErr(t, ampfsBin, append([]string{"url"}, args...)...)
		if err == nil || !strings.Contains(out, c.want) || strings.Count(strings.TrimSpace(out), "\n") > 0 {
			t.Errorf("ampfs url %s: %v: %q, want one line with %q", c.args, err, out, c.want)
		}
	}
	if out, err := runErr(t, ampfsBin, "url", src); err == nil || !strings.Contains(out, "not inside an ampfs mount") {
		t.Errorf("ampfs url outside a mount: %v: %s", err, out)
	}

	// After the expiry the same URL is refused.
	time.Sleep(time.Until(signed.Add(4 * time.Second)))
	if out, err := runErr(t, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", u); err != nil || out != "403" {
		t.Errorf("curl after expiry: %v, HTTP %s; want 403", err, out)
	}
	if strings.Contains(m.log(), "X-Amz-Signature") {
		t.Errorf("a presigned URL is in the log")
	}
}

// TestUploadHook: --on-upload runs once per completed upload with the S3
// event record on stdin.
func TestUploadHook(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	events := t.TempDir()
	hook := fmt.Sprintf(`cat > %q/"$(date +%%s%%N)-$$.json"`, events)
	m := mountAmpfs(t, srv, bucket, "--on-upload", hook, "--on-upload-timeout", "10s")
	src := t.TempDir()
	sizes := map[string]int64{"photos/a.jpg": 1000, "photos/b b.jpg": 20 << 10, "c.txt": 9 << 20} // c.txt: multipart
	if err := os.MkdirAll(m.path("photos"), 0o755); err != nil {
		t.Fatal(err)
	}
	for key, size := range sizes {
		p := filepath.Join(src, filepath.Base(key))
		writeRandom(t, p, size)
		run(t, "cp", p, m.path(key))
	}
	var recs []map[string]any
	eventually(t, 15*time.Second, func() error {
		entries, _ := os.ReadDir(events)
		if len(entries) < len(sizes) {
			return fmt.Errorf("%d events, want %d", len(entries), len(sizes))
		}
		recs = nil
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(events, e.Name()))
			if err != nil {
				return err
			}
			var ev struct {
				Records []map[string]any `json:"Records"`
			}
			if err := json.Unmarshal(b, &ev); err != nil || len(ev.Records) != 1 {
				return fmt.Errorf("event %s: %v: %s", e.Name(), err, b)
			}
			recs = append(recs, ev.Records[0])
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // no further runs
	if entries, _ := os.ReadDir(events); len(entries) != len(sizes) {
		t.Errorf("%d hook runs for %d uploads", len(entries), len(sizes))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		s3 := r["s3"].(map[string]any)
		obj := s3["object"].(map[string]any)
		key := obj["urlDecodedKey"].(string)
		seen[key] = true
		if r["eventName"] != "ObjectCreated:Put" || s3["bucket"].(map[string]any)["name"] != bucket {
			t.Errorf("record %v", r)
		}
		if _, err := time.Parse(time.RFC3339, r["eventTime"].(string)); err != nil {
			t.Errorf("eventTime: %v", err)
		}
		head := headObject(t, srv, bucket, key)
		if head == nil {
			t.Errorf("%s: event for an object that is not there", key)
			continue
		}
		if obj["size"].(float64) != float64(sizes[key]) || obj["eTag"] != strings.Trim(*head.ETag, `"`) {
			t.Errorf("%s: size %v eTag %v; want %d %s", key, obj["size"], obj["eTag"], sizes[key], *head.ETag)
		}
		if wantKey := strings.ReplaceAll(key, " ", "+"); obj["key"] != wantKey {
			t.Errorf("key %v, want %s (URL-encoded as S3 does)", obj["key"], wantKey)
		}
	}
	for key := range sizes {
		if !seen[key] {
			t.Errorf("no event for %s", key)
		}
	}
}

// TestMetrics: /metrics parses as Prometheus text and counts the requests
// the server saw.
func TestMetrics(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	proxy := srv.CountingProxy(t)
	m := mountAmpfs(t, srv.Via(proxy.Endpoint), bucket, "--metrics-addr", "127.0.0.1:0")
	addr := ""
	for _, l := range logFileLines(t, m.logf) {
		if l["message"] == "serving metrics" {
			addr, _ = l["addr"].(string)
		}
	}
	if addr == "" {
		t.Fatalf("no \"serving metrics\" line with the address")
	}
	src := filepath.Join(t.TempDir(), "src")
	writeRandom(t, src, 64<<10)
	for i := range 3 {
		run(t, "cp", src, m.path(fmt.Sprintf("f%d", i)))
	}
	run(t, "cmp", src, m.path("f1"))
	run(t, "rm", m.path("f2"))
	// A read of a file deleted on the server behind the mount's back: the
	// GET's NotFound is counted as the read's ENOENT.
	run(t, "cp", src, m.path("gone"))
	deleteObject(t, srv, bucket, "gone")
	if _, err := runErr(t, "cat", m.path("gone")); err == nil {
		t.Fatal("reading a file deleted on the server succeeded")
	}

	fams := scrape(t, addr)
	counts := proxy.Counts()
	t.Logf("server saw %v", counts)
	sent := 0
	for _, n := range counts {
		sent += n
	}
	if got := sum(fams["ampfs_s3_attempts_total"], nil); int(got) != sent {
		t.Errorf("ampfs_s3_attempts_total = %v, the server saw %d requests", got, sent)
	}
	for _, c := range []struct {
		op     string
		atLeat float64
		server int
	}{
		{"PutObject", 3, counts["PutObject"]},
		{"DeleteObject", 1, counts["DeleteObject"]},
		{"GetObject", 1, counts["GetObject"] + counts["GetObject(range)"]},
	} {
		got := sum(fams["ampfs_s3_requests_total"], map[string]string{"op": c.op})
		if got < c.atLeat || int(got) != c.server {
			t.Errorf("ampfs_s3_requests_total{op=%q} = %v; want the server's %d (at least %v)", c.op, got, c.server, c.atLeat)
		}
		if h := fams["ampfs_s3_request_duration_seconds"]; h == nil || histCount(h, c.op) != uint64(got) {
			t.Errorf("latency histogram of %s does not count %v calls", c.op, got)
		}
	}
	if got := sum(fams["ampfs_uploads_total"], nil); got != 4 {
		t.Errorf("ampfs_uploads_total = %v, want 4", got)
	}
	if got := sum(fams["ampfs_s3_body_bytes_total"], map[string]string{"direction": "upload"}); got != 4*64<<10 {
		t.Errorf("upload bytes %v, want %d", got, 4*64<<10)
	}
	if _, ok := fams["ampfs_dirty_files"]; !ok {
		t.Errorf("no ampfs_dirty_files")
	}
	if _, ok := fams["ampfs_cache_hits_total"]; !ok {
		t.Errorf("no cache counters")
	}
	// At least one: the kernel may retry the read (or read ahead) once.
	if got := sum(fams["ampfs_fs_errors_total"], map[string]string{"op": "read", "errno": "ENOENT"}); got < 1 || got > 3 {
		t.Errorf("ampfs_fs_errors_total{op=read,errno=ENOENT} = %v, want 1 to 3", got)
	}
	for _, q := range []string{"ampfs_upload_queue_queued", "ampfs_upload_queue_uploading", "ampfs_upload_queue_failed", "ampfs_upload_pending_bytes"} {
		if _, ok := fams[q]; !ok {
			t.Errorf("no %s", q)
		}
	}
}

func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	names := make([]string, 0, len(fams))
	for n := range fams {
		if strings.HasPrefix(n, "ampfs_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	t.Logf("ampfs metrics: %s", strings.Join(names, " "))
	return fams
}

// sum adds the counter or gauge values of the series that match labels.
func sum(f *dto.MetricFamily, labels map[string]string) float64 {
	if f == nil {
		return -1
	}
	var total float64
next:
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
				continue next
			}
		}
		total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return total
}

func histCount(f *dto.MetricFamily, op string) uint64 {
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "op" && lp.GetValue() == op {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// TestLogControl: --log-file is reopened on SIGHUP (logrotate), SIGUSR2
// toggles debug, 'ampfs log-level' sets the level through the control
// socket.
func TestLogControl(t *testing.T) {
	t.Parallel()
	srv, bucket := startServer(t)
	logf := filepath.Join(t.TempDir(), "ampfs.log")
	m := startAmpfs(t, srv, bucket, "--log-file", logf)
	eventually(t, mountTimeout, func() error {
		if ok, _ := m.mounted(); !ok || !hasLine(t, logf, "info", "mounted") {
			return fmt.Errorf("not mounted, or no \"mounted\" line in %s", logf)
		}
		return nil
	})
	t.Cleanup(func() { checkLogFile(t, logf); checkLogFile(t, logf+".1") })

	// logrotate: rename, then SIGHUP.
	if err := os.Rename(logf, logf+".1"); err != nil {
		t.Fatal(err)
	}
	m.signal(syscall.SIGHUP)
	eventually(t, 5*time.Second, func() error {
		if !hasLine(t, logf, "info", "log file reopened") {
			return fmt.Errorf("no \"log file reopened\" line in a new %s", logf)
		}
		return nil
	})

	debugLines := func() int {
		n := 0
		for _, l := range logFileLines(t, logf) {
			if l["level"] == "debug" {
				n++
			}
		}
		return n
	}
	run(t, "ls", m.dir)
	if n := debugLines(); n != 0 {
		t.Fatalf("%d debug lines at level info", n)
	}
	m.signal(syscall.SIGUSR2)
	eventually(t, 5*time.Second, func() error {
		run(t, "ls", m.dir)
		if debugLines() == 0 {
			return fmt.Errorf("no debug lines after SIGUSR2")
		}
		return nil
	})
	if got := strings.TrimSpace(run(t, ampfsBin, "log-level", m.dir)); got != "debug" {
		t.Errorf("log-level after SIGUSR2: %q", got)
	}
	if got := strings.TrimSpace(run(t, ampfsBin, "log-level", m.dir, "warn")); got != "warn" {
		t.Errorf("log-level warn: %q", got)
	}
	before := debugLines()
	run(t, "ls", m.dir)
	time.Sleep(200 * time.Millisecond)
	if debugLines() != before {
		t.Errorf("debug lines at level warn")
	}
	if out, err := runErr(t, ampfsBin, "log-level", m.dir, "loud"); err == nil || !strings.Contains(out, "not a level") {
		t.Errorf("log-level loud: %v: %s", err, out)
	}
}

// TestThumbnailHook: the README's example, contrib/hooks/thumbnail.sh,
// turns photos/x.jpg into photos/thumbnails/x.webp (200x200) through the
// mount, and does not run on its own thumbnails.
func TestThumbnailHook(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("convert", "-version").CombinedOutput(); err != nil || !strings.Contains(string(out), "ImageMagick") {
		t.Skip("ImageMagick's convert is not installed (apt-get install imagemagick)")
	}
	script, err := filepath.Abs("../contrib/hooks/thumbnail.sh")
	if err != nil {
		t.Fatal(err)
	}
	srv, bucket := startServer(t)
	m := mountAmpfs(t, srv, bucket, "--on-upload", script)
	src := filepath.Join(t.TempDir(), "x.jpg")
	run(t, "convert", "-size", "640x480", "gradient:red-blue", src)
	if err := os.MkdirAll(m.path("photos"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", src, m.path("photos/x.jpg"))
	run(t, "cp", src, m.path("notes.jpg")) // not under photos/: no thumbnail
	eventually(t, 20*time.Second, func() error {
		if headObject(t, srv, bucket, "photos/thumbnails/x.webp") == nil {
			return fmt.Errorf("no photos/thumbnails/x.webp")
		}
		return nil
	})
	// The object exists from convert's first close on; the hook may still
	// be writing it (ImageMagick can open its output more than once), so
	// wait for a complete image rather than the first version.
	got := filepath.Join(t.TempDir(), "x.webp")
	eventually(t, 20*time.Second, func() error {
		if _, err := runErr(t, "cp", m.path("photos/thumbnails/x.webp"), got); err != nil {
			return err
		}
		out, err := runErr(t, "identify", "-format", "%m %wx%h", got)
		if err != nil || strings.TrimSpace(out) != "WEBP 200x200" {
			return fmt.Errorf("thumbnail is %q (%v), want WEBP 200x200", out, err)
		}
		return nil
	})
	time.Sleep(time.Second)
	if keys := listKeys(t, srv, bucket, ""); strings.Join(keys, " ") != "notes.jpg photos/ photos/thumbnails/ photos/thumbnails/x.webp photos/x.jpg" {
		t.Errorf("bucket holds %q", keys)
	}
}
