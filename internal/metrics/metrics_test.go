package metrics

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/store"
)

func TestServeParses(t *testing.T) {
	m := New()
	m.Request("GetObject", 20*time.Millisecond, nil)
	m.Request("GetObject", 30*time.Millisecond, store.Errorf(store.ErrNotFound, "GetObject", "k", "x"))
	m.OnAttempt("PutObject", 1)
	m.OnAttempt("PutObject", 2)
	m.Bytes("UploadPart", 100, true)
	m.Uploaded(store.ObjectInfo{Size: 7})
	dirty := 3.0
	m.GaugeFunc("dirty_files", "test", func() float64 { return dirty })

	srv, err := m.Serve("127.0.0.1:0", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("no %s", name)
		}
	next:
		for _, mt := range f.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.GetCounter().GetValue()
			case mt.Gauge != nil:
				return mt.GetGauge().GetValue()
			case mt.Histogram != nil:
				return float64(mt.GetHistogram().GetSampleCount())
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ampfs_s3_requests_total", map[string]string{"op": "GetObject"}, 2},
		{"ampfs_s3_requests_total", map[string]string{"op": "UploadPart"}, 0},
		{"ampfs_s3_request_duration_seconds", map[string]string{"op": "GetObject"}, 2},
		{"ampfs_s3_errors_total", map[string]string{"op": "GetObject", "kind": "not_found"}, 1},
		{"ampfs_s3_attempts_total", map[string]string{"op": "PutObject"}, 2},
		{"ampfs_s3_retries_total", map[string]string{"op": "PutObject"}, 1},
		{"ampfs_s3_body_bytes_total", map[string]string{"direction": "upload"}, 100},
		{"ampfs_uploads_total", nil, 1},
		{"ampfs_uploaded_file_bytes_total", nil, 7},
		{"ampfs_dirty_files", nil, 3},
	} {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestServeTakenPort(t *testing.T) {
	m := New()
	srv, err := m.Serve("127.0.0.1:0", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := New().Serve(srv.Addr(), zerolog.Nop()); err == nil {
		t.Error("a second server on the same port started")
	}
}
