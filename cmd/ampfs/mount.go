package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/ampfs/ampfs/auth"
	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/fs"
	s3store "github.com/ampfs/ampfs/store/s3"
)

// checkTimeout bounds the bucket check at start-up: a mount that cannot
// reach its server says so within seconds.
const checkTimeout = 8 * time.Second

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount BUCKET at MOUNTPOINT (in the foreground)",
		ArgsUsage: "BUCKET MOUNTPOINT",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "endpoint", Usage: "S3 endpoint URL (default: AWS, or $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL)"},
			&cli.StringFlag{Name: "region", Usage: "S3 region (default: $AWS_REGION, else us-east-1)"},
			&cli.BoolFlag{Name: "path-style", Usage: "address the bucket in the path, not the host name (most local S3 servers need this)"},
			&cli.StringFlag{Name: "profile", Usage: "shared config profile for credentials (default: $AWS_PROFILE)"},
			&cli.StringFlag{Name: "layout", Value: "raw", Usage: "raw: the bucket (or --prefix) as it is"},
			&cli.StringFlag{Name: "prefix", Usage: "with --layout raw, mount only keys below this prefix"},
			&cli.StringFlag{Name: "cache-dir", Usage: "directory for staged writes (default: $XDG_CACHE_HOME/ampfs/BUCKET)"},
			&cli.StringFlag{Name: "multipart-threshold", Value: "8MiB", Usage: "files this size or larger upload in parts"},
			&cli.StringFlag{Name: "part-size", Value: "8MiB", Usage: "smallest multipart part size (grows for huge files)"},
			&cli.IntFlag{Name: "upload-concurrency", Value: 4, Usage: "parts of one file uploading at once"},
			&cli.DurationFlag{Name: "metadata-ttl", Value: time.Second, Usage: "how long attributes and listings are cached"},
			&cli.DurationFlag{Name: "drain-timeout", Value: time.Minute, Usage: "on SIGTERM or unmount, how long to wait for uploads"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other local users in; the kernel checks the shown modes"},
			&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request (with --log-level debug)"},
		}, logFlags()...),
		Action: runMount,
	}
}

func runMount(c *cli.Context) error {
	log, err := newLogger(c, os.Stderr)
	if err != nil {
		return err
	}
	if c.NArg() != 2 {
		return userErrorf("mount needs BUCKET and MOUNTPOINT: ampfs mount [flags] BUCKET MOUNTPOINT")
	}
	bucketName, mnt := c.Args().Get(0), c.Args().Get(1)
	if c.String("layout") != "raw" {
		return userErrorf("--layout %q is not available: use --layout raw", c.String("layout"))
	}
	threshold, err := parseSize(c, "multipart-threshold")
	if err != nil {
		return err
	}
	partSize, err := parseSize(c, "part-size")
	if err != nil {
		return err
	}
	if err := checkFuseDevice(); err != nil {
		return err
	}
	mountpoint, err := checkMountpoint(mnt)
	if err != nil {
		return err
	}
	cacheDir, err := cacheDir(c.String("cache-dir"), bucketName)
	if err != nil {
		return err
	}

	// Uploads run under this context; it ends only after the drain.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	session, err := auth.Default(ctx, auth.Options{Profile: c.String("profile"), Logger: log})
	if err != nil {
		return userErrorf("credentials: %v: check --profile / AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", rootCause(err, 0))
	}
	bucket, err := s3store.New(ctx, s3store.Options{
		Bucket:      bucketName,
		Endpoint:    c.String("endpoint"),
		Region:      c.String("region"),
		PathStyle:   c.Bool("path-style"),
		Profile:     c.String("profile"),
		Credentials: session.Credentials,
		Logger:      log,
	})
	if err != nil {
		return userErrorf("S3 client: %v: check --profile, --region and --endpoint", rootCause(err, 0))
	}
	if err := checkBucket(ctx, bucket, c.String("endpoint"), checkTimeout); err != nil {
		return err
	}
	ch, err := cache.New(cache.Options{
		Bucket:             bucket,
		StagingDir:         filepath.Join(cacheDir, "staging"),
		MultipartThreshold: threshold,
		PartSize:           partSize,
		UploadConcurrency:  c.Int("upload-concurrency"),
		Context:            ctx,
		Logger:             log,
	})
	if err != nil {
		return userErrorf("%v: check --cache-dir", err)
	}
	fsys, err := fs.New(fs.Options{
		Bucket:      bucket,
		Cache:       ch,
		Prefix:      c.String("prefix"),
		UID:         uint32(os.Getuid()),
		GID:         uint32(os.Getgid()),
		MetadataTTL: c.Duration("metadata-ttl"),
		AllowOther:  c.Bool("allow-other"),
		DebugFUSE:   c.Bool("debug-fuse"),
		Logger:      log,
	})
	if err != nil {
		return err
	}
	// Catch signals before the mount exists: a SIGTERM in between would
	// otherwise kill the process and leave a dead mount behind.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	server, err := fsys.Mount(mountpoint)
	if err != nil {
		return userErrorf("%v: check that %s is an empty directory you own and that FUSE works (fusermount3 installed)", err, mountpoint)
	}
	go handleSignals(sigs, server, fsys, mountpoint, c.Duration("drain-timeout"), log)
	log.Info().Str("bucket", bucketName).Str("path", mountpoint).Str("cache_dir", cacheDir).Msg("mounted")
	server.Wait()

	// Files whose upload failed while open are retried once more.
	if n := fsys.Dirty(); n > 0 {
		dctx, dcancel := context.WithTimeout(ctx, c.Duration("drain-timeout"))
		err := fsys.FlushAll(dctx)
		dcancel()
		if err != nil {
			return userErrorf("%d file(s) could not be uploaded before exit (%v): their data is lost", n, err)
		}
	}
	log.Info().Str("path", mountpoint).Msg("unmounted")
	return nil
}

// handleSignals makes SIGINT and SIGTERM flush staged data, then unmount.
func handleSignals(sigs <-chan os.Signal, server *fuse.Server, fsys *fs.FS, mountpoint string, drain time.Duration, log zerolog.Logger) {
	sig := <-sigs
	log.Info().Str("signal", sig.String()).Int("dirty", fsys.Dirty()).Msg("flushing and unmounting")
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	if err := fsys.FlushAll(ctx); err != nil {
		log.Error().Err(err).Msg("could not upload everything before unmount")
	}
	cancel()
	// A busy mount (a shell inside it, a file still open) refuses a plain
	// unmount; retry for a while, then detach it lazily so the process can
	// still exit on SIGTERM.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := server.Unmount()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log.Warn().Err(err).Str("path", mountpoint).Msg("mount is busy; detaching it lazily")
			if err := lazyUnmount(mountpoint); err != nil {
				log.Error().Err(err).Str("path", mountpoint).Msg("lazy unmount failed")
			}
			return
		}
		select {
		case <-sigs:
			deadline = time.Time{} // a second signal: stop waiting
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func parseSize(c *cli.Context, name string) (int64, error) {
	v, err := humanize.ParseBytes(c.String(name))
	if err != nil || v == 0 {
		return 0, userErrorf("--%s %q is not a size: write it like 8MiB or 64MiB", name, c.String(name))
	}
	return int64(v), nil
}

// cacheDir picks the directory for staged data.
func cacheDir(flag, bucket string) (string, error) {
	if flag != "" {
		return filepath.Abs(flag)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", userErrorf("no cache directory (%v): give one with --cache-dir", err)
	}
	return filepath.Join(base, "ampfs", bucket), nil
}
