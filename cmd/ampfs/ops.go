package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/ampfs/ampfs/fs"
	"github.com/ampfs/ampfs/internal/hook"
	"github.com/ampfs/ampfs/internal/metrics"
	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/metered"
	s3store "github.com/ampfs/ampfs/store/s3"
)

// opsFlags are the mount's flags for running as a service: daemon mode,
// log file, upload hook, metrics.
func opsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "daemon", Usage: "run in the background; return once the mount is ready, or with its error (what mount.ampfs does)"},
		&cli.IntFlag{Name: "ready-fd", Hidden: true, Usage: "internal: the pipe on which a daemon reports readiness to its parent"},
		&cli.StringFlag{Name: "log-file", Usage: "append log lines to this file instead of stderr; reopened on SIGHUP (logrotate)"},
		&cli.StringFlag{Name: "on-upload", Usage: "run this shell command after each completed upload, with an S3-event JSON record on stdin"},
		&cli.IntFlag{Name: "on-upload-concurrency", Value: 4, Usage: "--on-upload commands running at once"},
		&cli.DurationFlag{Name: "on-upload-timeout", Value: time.Minute, Usage: "kill an --on-upload command after this long (failures are logged, never retried)"},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9370"},
		&cli.StringFlag{Name: "control-socket", Usage: "the control socket for 'ampfs url' and 'ampfs log-level' (default: derived from the mountpoint, see 'ampfs url --help')"},
	}
}

// ops is what the mount runs beside the file system: metrics, the upload
// hook, the control socket, readiness notifications and the signals that
// change logging. runMount owns it: newOps before the store is made,
// mounted once the mount is up, close after it is gone.
type ops struct {
	c   *cli.Context
	log zerolog.Logger

	metrics   *metrics.Metrics // nil without --metrics-addr
	metricsSv *metrics.Server
	hook      *hook.Runner // nil without --on-upload
	control   *controlServer
	sigs      chan os.Signal
	bucket    *s3store.Bucket
	store     store.Bucket // bucket, decorated for metrics
}

func newOps(c *cli.Context, log zerolog.Logger) *ops {
	o := &ops{c: c, log: log}
	if c.String("metrics-addr") != "" {
		o.metrics = metrics.New()
	}
	// SIGHUP reopens --log-file (and never kills the mount); SIGUSR2
	// toggles debug logging.
	o.sigs = make(chan os.Signal, 4)
	signal.Notify(o.sigs, syscall.SIGHUP, syscall.SIGUSR2)
	go o.handleSignals()
	return o
}

func (o *ops) handleSignals() {
	for sig := range o.sigs {
		switch sig {
		case syscall.SIGHUP:
			if openedLogFile == nil {
				continue
			}
			if err := openedLogFile.Reopen(); err != nil {
				o.log.Warn().Err(err).Msg("could not reopen the log file; still writing to the old one")
				continue
			}
			o.log.Info().Msg("log file reopened")
		case syscall.SIGUSR2:
			l := toggleDebug()
			// Said at warn so that it shows whichever way it went.
			o.log.WithLevel(zerolog.WarnLevel).Str("level", l.String()).Msg("log level changed (SIGUSR2)")
		}
	}
}

// s3Options adds what metrics need to the S3 client's options.
func (o *ops) s3Options(opts s3store.Options) s3store.Options {
	if o.metrics != nil {
		opts.OnAttempt = o.metrics.OnAttempt
	}
	return opts
}

// wrapBucket decorates the bucket for metrics and keeps the S3 client for
// presigning.
func (o *ops) wrapBucket(b *s3store.Bucket) store.Bucket {
	o.bucket, o.store = b, b
	if o.metrics != nil {
		o.store = metered.New(b, o.metrics, nil)
	}
	return o.store
}

// start starts the hook, the metrics server and the control socket; after
// the store and before the mount, so the mount is ready only when they
// are. Its errors are the user's to fix.
func (o *ops) start(bucket, region, mountpoint string, fsys *fs.FS, statser any) error {
	if cmd := o.c.String("on-upload"); cmd != "" {
		r, err := hook.New(hook.Options{
			Command:     cmd,
			Bucket:      bucket,
			Region:      region,
			Concurrency: o.c.Int("on-upload-concurrency"),
			Timeout:     o.c.Duration("on-upload-timeout"),
			Env:         []string{"AMPFS_MOUNTPOINT=" + mountpoint},
			Logger:      o.log,
		})
		if err != nil {
			return userErrorf("--on-upload: %v", err)
		}
		o.hook = r
	}
	if o.metrics != nil {
		o.metrics.GaugeFunc("dirty_files", "Files with changes not yet uploaded.", func() float64 { return float64(fsys.Dirty()) })
		for _, c := range []struct {
			name, help string
			f          func(fs.Stats) int64
		}{
			{"fuse_reads_total", "FUSE READ requests served.", func(s fs.Stats) int64 { return s.Reads }},
			{"whole_file_reads_total", "Of those, reads served from a whole local file.", func(s fs.Stats) int64 { return s.WholeReads }},
			{"passthrough_opens_total", "Opens the kernel serves from a whole local file itself (FUSE passthrough).", func(s fs.Stats) int64 { return s.PassthroughOpens }},
		} {
			o.metrics.CounterFunc(c.name, c.help, func() float64 { return float64(c.f(fsys.Stats())) })
		}
		if o.hook != nil {
			o.metrics.GaugeFunc("upload_hooks_pending", "--on-upload commands queued or running.", func() float64 { return float64(o.hook.Queued()) })
		}
		registerCacheMetrics(o.metrics, statser)
		s, err := o.metrics.Serve(o.c.String("metrics-addr"), o.log)
		if err != nil {
			return userErrorf("--metrics-addr: %v", err)
		}
		o.metricsSv = s
	}
	path := o.c.String("control-socket")
	if path == "" {
		path = controlSocketPath(mountpoint)
	}
	cs, err := listenControl(path, &controlHandler{fsys: fsys, bucket: o.store, presigner: newPresigner(o.bucket), log: o.log})
	if err != nil {
		// 'ampfs url' will not work; the mount itself does.
		o.log.Warn().Err(err).Str("path", path).Msg("no control socket")
	} else {
		o.control = cs
	}
	return nil
}

// onUpload is cache.Options.OnUpload: it must not block.
func (o *ops) onUpload(info store.ObjectInfo) {
	if o.metrics != nil {
		o.metrics.Uploaded(info)
	}
	if o.hook != nil {
		o.hook.Upload(info)
	}
}

// presign is fs.Options.Presign (the user.ampfs.url xattr): the link lasts
// the asked time, or as long as the credentials if they end sooner.
func (o *ops) presign(ctx context.Context, key string, expires time.Duration) (string, error) {
	return newPresigner(o.bucket).presign(ctx, key, expires, false, true)
}

// mounted is called once the mount is up: it tells the parent (daemon
// mode) and systemd (Type=notify) that the mount is ready.
func (o *ops) mounted() {
	daemonReady()
	notifyReady(o.log)
}

// close stops what start started, after the mount is gone and the staged
// files are uploaded: queued hooks get up to --on-upload-timeout to run.
func (o *ops) close() {
	signal.Stop(o.sigs)
	if o.control != nil {
		o.control.Close()
	}
	if o.hook != nil {
		o.hook.Close(o.c.Duration("on-upload-timeout"))
	}
	if o.metricsSv != nil {
		o.metricsSv.Close()
	}
}

// onErrno feeds the fs errno counter (nil without --metrics-addr).
func (o *ops) onErrno() func(op, errno string) {
	if o.metrics == nil {
		return nil
	}
	return o.metrics.Errno
}
