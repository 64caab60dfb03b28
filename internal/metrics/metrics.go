// Package metrics holds the mount's Prometheus metrics and serves them in
// the text exposition format (--metrics-addr).
//
// Metrics is a metered.Observer (S3 calls by operation, their latency and
// errors by kind) and takes SDK attempts (retries) through OnAttempt; values
// owned elsewhere (dirty files, cache counters, the hook queue) are read
// when scraped, through GaugeFunc and CounterFunc.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/metered"
)

const namespace = "ampfs"

// Metrics is one mount's registry.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec   // op
	duration *prometheus.HistogramVec // op
	errors   *prometheus.CounterVec   // op, kind
	attempts *prometheus.CounterVec   // op
	retries  *prometheus.CounterVec   // op
	bytes    *prometheus.CounterVec   // direction
	uploads  prometheus.Counter
	upBytes  prometheus.Counter
	errnos   *prometheus.CounterVec // op, errno
}

var _ metered.Observer = (*Metrics)(nil)

// New makes the registry, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "s3", Name: "requests_total",
			Help: "S3 calls by operation (a call's retries count once; see ampfs_s3_attempts_total).",
		}, []string{"op"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "s3", Name: "request_duration_seconds",
			Help: "S3 call latency by operation, retries included; for GetObject up to the response headers.",
			// 1 ms .. ~65 s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17),
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "s3", Name: "errors_total",
			Help: "Failed S3 calls by operation and kind (not_found, access_denied, unavailable, ...).",
		}, []string{"op", "kind"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "s3", Name: "attempts_total",
			Help: "HTTP attempts the SDK made, by operation, first attempts and retries.",
		}, []string{"op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "s3", Name: "retries_total",
			Help: "HTTP attempts after the first, by operation.",
		}, []string{"op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "s3", Name: "body_bytes_total",
			Help: "Object bytes sent (upload) and received (download).",
		}, []string{"direction"}),
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "uploads_total", Help: "Completed uploads of files.",
		}),
		upBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "uploaded_file_bytes_total", Help: "Sizes of the files whose upload completed.",
		}),
		errnos: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "fs", Name: "errors_total",
			Help: "File operations that failed, by operation and errno (ENOENT of lookups not counted).",
		}, []string{"op", "errno"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.errors, m.attempts, m.retries, m.bytes, m.uploads, m.upBytes, m.errnos,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every operation shows from the start, at 0, so rate() works from the
	// first scrape.
	for _, op := range metered.Ops {
		m.requests.WithLabelValues(op)
	}
	m.bytes.WithLabelValues("upload")
	m.bytes.WithLabelValues("download")
	return m
}

// Request implements metered.Observer.
func (m *Metrics) Request(op string, dur time.Duration, err error) {
	m.requests.WithLabelValues(op).Inc()
	m.duration.WithLabelValues(op).Observe(dur.Seconds())
	if err != nil {
		m.errors.WithLabelValues(op, metered.Kind(err)).Inc()
	}
}

// Bytes implements metered.Observer.
func (m *Metrics) Bytes(op string, n int64, upload bool) {
	dir := "download"
	if upload {
		dir = "upload"
	}
	m.bytes.WithLabelValues(dir).Add(float64(n))
}

// OnAttempt counts one HTTP attempt of op; attempt 1 is the first. It has
// the signature of s3store.Options.OnAttempt.
func (m *Metrics) OnAttempt(op string, attempt int) {
	m.attempts.WithLabelValues(op).Inc()
	if attempt > 1 {
		m.retries.WithLabelValues(op).Inc()
	}
}

// Uploaded counts one completed upload (cache.Options.OnUpload).
func (m *Metrics) Uploaded(info store.ObjectInfo) {
	m.uploads.Inc()
	m.upBytes.Add(float64(info.Size))
}

// GaugeFunc registers a gauge read from f at each scrape.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, f))
}

// CounterFunc registers a counter read from f at each scrape; f must never
// decrease.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, f))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Server serves /metrics until Close.
type Server struct {
	srv  *http.Server
	addr string
	done chan struct{}
}

// Addr is the address listened on (with the port chosen for ":0").
func (s *Server) Addr() string { return s.addr }

// Serve listens on addr (host:port) now, so a taken port is an error at
// start-up, and serves /metrics in the background.
func (m *Metrics) Serve(addr string, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	// Go's profiler, for the "why is it slow" of a performance report
	// (go tool pprof http://ADDR/debug/pprof/profile). The address is
	// loopback by default and the mount's own; it exposes no data.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ampfs: metrics at /metrics, profiles at /debug/pprof/\n"))
	})
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn().Err(err).Str("addr", addr).Msg("metrics server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving metrics")
	return s, nil
}

// Close stops the server and waits for it.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

// Errno counts a file operation that failed with errno (its name, e.g.
// "EIO").
func (m *Metrics) Errno(op, errno string) {
	m.errnos.WithLabelValues(op, errno).Inc()
}
