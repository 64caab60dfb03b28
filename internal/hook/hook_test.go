package hook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/store"
)

func TestEventJSON(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("x", 3600))
	ev := NewEvent("my-bucket", "eu-west-1", store.ObjectInfo{Key: "public/photos/a b+c.jpg", Size: 1234, ETag: "0123abcd"}, now)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	// Read it back the way a Lambda handler would: generically.
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	rec := doc["Records"].([]any)[0].(map[string]any)
	s3 := rec["s3"].(map[string]any)
	obj := s3["object"].(map[string]any)
	for _, c := range []struct {
		name string
		got  any
		want any
	}{
		{"eventName", rec["eventName"], "ObjectCreated:Put"},
		{"eventTime", rec["eventTime"], "2026-03-04T04:06:07.890Z"},
		{"eventSource", rec["eventSource"], "ampfs:s3"},
		{"awsRegion", rec["awsRegion"], "eu-west-1"},
		{"bucket.name", s3["bucket"].(map[string]any)["name"], "my-bucket"},
		{"bucket.arn", s3["bucket"].(map[string]any)["arn"], "arn:aws:s3:::my-bucket"},
		{"object.key", obj["key"], "public/photos/a+b%2Bc.jpg"},
		{"object.urlDecodedKey", obj["urlDecodedKey"], "public/photos/a b+c.jpg"},
		{"object.size", obj["size"], float64(1234)},
		{"object.eTag", obj["eTag"], "0123abcd"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEncodeKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"a.txt":                  "a.txt",
		"dir/sub/a.txt":          "dir/sub/a.txt",
		"a b.txt":                "a+b.txt",
		"protected/us-east-1:id": "protected/us-east-1%3Aid",
		"é/ü":                    "%C3%A9/%C3%BC",
	} {
		if got := encodeKey(key); got != want {
			t.Errorf("encodeKey(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestRunsEachEventOnStdin: one run per upload, the record on stdin.
func TestRunsEachEventOnStdin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := New(Options{
		Command: fmt.Sprintf(`cat > %q/"$(echo "$AMPFS_KEY" | tr / _)".json`, dir),
		Bucket:  "b",
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r.Upload(store.ObjectInfo{Key: fmt.Sprintf("d/f%d", i), Size: int64(i), ETag: "e"})
	}
	r.Close(10 * time.Second)
	for i := range 3 {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("d_f%d.json", i)))
		if err != nil {
			t.Fatal(err)
		}
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("hook stdin is not the event: %v: %s", err, b)
		}
		if o := ev.Records[0].S3.Object; o.Key != fmt.Sprintf("d/f%d", i) || o.Size != int64(i) {
			t.Errorf("event %d: %+v", i, o)
		}
	}
}

// TestConcurrencyBound: never more commands at once than Concurrency, and
// Upload returns at once however slow the command.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	dir, out := t.TempDir(), t.TempDir()
	// Each run records how many runs were in flight (files in dir) when it
	// started.
	cmd := fmt.Sprintf(`d=%q; f=$(mktemp -p "$d" run.XXXXXX); ls "$d" | grep -c '^run\.' >> %q/counts; sleep 0.3; rm -f "$f"`,
		dir, out)
	r, err := New(Options{Command: cmd, Bucket: "b", Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 8 {
		r.Upload(store.ObjectInfo{Key: fmt.Sprint(i)})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Upload blocked for %v", d)
	}
	r.Close(30 * time.Second)
	b, err := os.ReadFile(filepath.Join(out, "counts"))
	if err != nil {
		t.Fatal(err)
	}
	counts := strings.Fields(string(b))
	if len(counts) != 8 {
		t.Fatalf("%d runs, want 8: %q", len(counts), counts)
	}
	for _, c := range counts {
		if c != "1" && c != "2" {
			t.Errorf("a run saw %s runs in flight, want at most 2", c)
		}
	}
	// 8 runs of 0.3 s two at a time take about 1.2 s, not 2.4 s.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("8 runs took %v: not running two at a time", d)
	}
}

// TestTimeoutKillsAndWarns: a command past its timeout is killed, with what
// it started, logged at warn and not retried.
func TestTimeoutKillsAndWarns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logBuf syncBuffer
	r, err := New(Options{
		Command: fmt.Sprintf(`echo run >> %q/runs; sleep 30; echo late >> %q/runs`, dir, dir),
		Bucket:  "b",
		Timeout: 300 * time.Millisecond,
		Logger:  zerolog.New(&logBuf),
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r.Upload(store.ObjectInfo{Key: "slow"})
	r.Close(10 * time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a 300ms timeout took %v", d)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "runs"))
	if got := strings.Fields(string(b)); len(got) != 1 || got[0] != "run" {
		t.Errorf("runs = %q, want one run, killed before it ended", got)
	}
	if log := logBuf.String(); !strings.Contains(log, `"level":"warn"`) || !strings.Contains(log, `"key":"slow"`) || !strings.Contains(log, "killed") {
		t.Errorf("no warn line for the timeout: %s", log)
	}
}

// TestFailureLoggedNotRetried: a failing command runs once, with a warning
// carrying its output.
func TestFailureLoggedNotRetried(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logBuf syncBuffer
	r, err := New(Options{
		Command: fmt.Sprintf(`echo run >> %q/runs; echo "no such image" >&2; exit 3`, dir),
		Bucket:  "b",
		Logger:  zerolog.New(&logBuf),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Upload(store.ObjectInfo{Key: "x"})
	r.Close(10 * time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "runs"))
	if n := strings.Count(string(b), "run"); n != 1 {
		t.Errorf("ran %d times, want once", n)
	}
	log := logBuf.String()
	if !strings.Contains(log, `"level":"warn"`) || !strings.Contains(log, "no such image") || !strings.Contains(log, "exit status 3") {
		t.Errorf("warn line missing the failure: %s", log)
	}
}

func TestQueueFullDrops(t *testing.T) {
	t.Parallel()
	var logBuf syncBuffer
	r, err := New(Options{Command: "sleep 0.2", Bucket: "b", Concurrency: 1, MaxQueue: 2, Logger: zerolog.New(&logBuf)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		r.Upload(store.ObjectInfo{Key: fmt.Sprint(i)})
	}
	if q := r.Queued(); q > 3 {
		t.Errorf("Queued = %d, want at most 3 (2 waiting + 1 running)", q)
	}
	r.Close(10 * time.Second)
	if !strings.Contains(logBuf.String(), "queue full") {
		t.Errorf("no warning for dropped events: %s", logBuf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
