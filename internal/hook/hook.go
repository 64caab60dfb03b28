// Package hook runs a command after each completed upload, with one
// S3-event-shaped JSON record on its stdin: the local analogue of an S3
// Lambda trigger (--on-upload).
//
// Events are queued without blocking the uploader (cache.Options.OnUpload
// must not block) and run by a fixed number of workers, each command under
// a timeout. A failure is logged at warn level and never retried: a hook
// that must not miss an object should reconcile from a listing.
//
// # Lock order
//
// Runner.mu only guards the queue; no command runs under it.
package hook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/store"
)

// Options configure New. Command is required; the zero value of every other
// field is a sensible default.
type Options struct {
	// Command is run with sh -c.
	Command string
	// Bucket names the bucket in the event records.
	Bucket string
	// Region is the record's awsRegion; "" leaves it empty.
	Region string
	// Concurrency bounds the commands running at once. Zero: 4.
	Concurrency int
	// Timeout bounds each command; it is then killed (with its process
	// group). Zero: 1 minute.
	Timeout time.Duration
	// MaxQueue bounds the events waiting for a worker; beyond it events are
	// dropped with a warning. Zero: 10000.
	MaxQueue int
	// Env is added to the command's environment (os.Environ()).
	Env []string
	// Logger receives a warn line per failure and a debug line per run.
	Logger zerolog.Logger
	// Now is the clock for eventTime. Zero: time.Now.
	Now func() time.Time
}

// Runner runs the hook command. Create it with New, feed it with Upload,
// and Close it when the mount ends.
type Runner struct {
	opts Options
	log  zerolog.Logger

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []store.ObjectInfo // GUARDED_BY(mu)
	closed bool               // GUARDED_BY(mu)
	// INVARIANT: running <= opts.Concurrency.
	running int // GUARDED_BY(mu)

	wg sync.WaitGroup // the workers
}

// New starts the workers.
func New(opts Options) (*Runner, error) {
	if opts.Command == "" {
		return nil, errors.New("no hook command")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Minute
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 10000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Runner{opts: opts, log: opts.Logger.With().Str("component", "hook").Logger()}
	r.cond = sync.NewCond(&r.mu)
	for range opts.Concurrency {
		r.wg.Add(1)
		go r.worker()
	}
	return r, nil
}

// Upload queues one event for the object; it never blocks. It has the
// signature of cache.Options.OnUpload.
func (r *Runner) Upload(info store.ObjectInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if len(r.queue) >= r.opts.MaxQueue {
		r.log.Warn().Str("key", info.Key).Int("queued", len(r.queue)).Msg("upload hook queue full; event dropped")
		return
	}
	r.queue = append(r.queue, info)
	r.cond.Signal()
}

// Queued returns the events waiting for a worker plus those running.
func (r *Runner) Queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue) + r.running
}

// Close stops taking events and waits up to d for the queued ones to run;
// commands still running after that are killed by their own timeouts.
func (r *Runner) Close(d time.Duration) {
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		r.log.Warn().Int("queued", r.Queued()).Msg("upload hooks still running at exit")
	}
}

func (r *Runner) worker() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.closed {
			r.cond.Wait()
		}
		if len(r.queue) == 0 { // closed and drained
			r.mu.Unlock()
			return
		}
		info := r.queue[0]
		r.queue[0] = store.ObjectInfo{}
		r.queue = r.queue[1:]
		r.running++
		r.mu.Unlock()

		r.run(info)

		r.mu.Lock()
		r.running--
		r.mu.Unlock()
	}
}

// run runs the command once for info; failures are logged, not returned.
func (r *Runner) run(info store.ObjectInfo) {
	body, err := json.Marshal(NewEvent(r.opts.Bucket, r.opts.Region, info, r.opts.Now()))
	if err != nil {
		r.log.Warn().Str("key", info.Key).Err(err).Msg("upload hook: event not encodable")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", r.opts.Command)
	cmd.Stdin = bytes.NewReader(append(body, '\n'))
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), r.opts.Env...)
	cmd.Env = append(cmd.Env, "AMPFS_BUCKET="+r.opts.Bucket, "AMPFS_KEY="+info.Key)
	// Its own process group, so the timeout kills what the shell started
	// too (convert, curl), not only sh.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	start := time.Now()
	err = cmd.Run()
	dur := time.Since(start)
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		r.log.Warn().Str("key", info.Key).Dur("dur", dur).Str("output", out.String()).
			Msgf("upload hook killed after %v; not retried", r.opts.Timeout)
	case err != nil:
		r.log.Warn().Str("key", info.Key).Dur("dur", dur).Err(err).Str("output", out.String()).
			Msg("upload hook failed; not retried")
	default:
		r.log.Debug().Str("key", info.Key).Dur("dur", dur).Msg("upload hook ran")
	}
}

// limitedBuffer keeps the first 4 KiB of a command's output, for the log.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const outputLimit = 4 << 10 // bytes

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := outputLimit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(bytes.TrimSpace(b.buf.Bytes()))
}

// String describes the runner for logs.
func (r *Runner) String() string {
	return fmt.Sprintf("hook(concurrency %d, timeout %v)", r.opts.Concurrency, r.opts.Timeout)
}
