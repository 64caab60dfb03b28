package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/ampfs/ampfs/auth"
	"github.com/ampfs/ampfs/cache"
	"github.com/ampfs/ampfs/fs"
	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/internal/amplifyconfig"
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
			&cli.StringFlag{Name: "layout", Value: "amplify", Usage: "amplify: public/, protected/<id>/ and private/ with the user's rights; raw: the bucket (or --prefix) as it is"},
			&cli.StringFlag{Name: "identity-id", Usage: "with --layout amplify: the signed-in user's Cognito identity id (REGION:UUID)"},
			&cli.BoolFlag{Name: "guest", Usage: "with --layout amplify: act as an unauthenticated (guest) user"},
			&cli.StringSliceFlag{Name: "group", Usage: "with --layout amplify: a user-pool group the user belongs to (for Gen2 group rules); repeatable"},
			&cli.StringFlag{Name: "prefix", Usage: "with --layout raw, mount only keys below this prefix"},
			&cli.StringFlag{Name: "cache-dir", Usage: "directory for staged writes (default: $XDG_CACHE_HOME/ampfs/BUCKET)"},
			&cli.StringFlag{Name: "multipart-threshold", Value: "8MiB", Usage: "files this size or larger upload in parts"},
			&cli.StringFlag{Name: "part-size", Value: "8MiB", Usage: "smallest multipart part size (grows for huge files)"},
			&cli.IntFlag{Name: "upload-concurrency", Value: 4, Usage: "parts of one file uploading at once"},
			&cli.IntFlag{Name: "upload-workers", Value: 16, Usage: "files uploading at once"},
			&cli.DurationFlag{Name: "settle", Value: 250 * time.Millisecond, Usage: "how long a closed file waits before its upload starts, so a chmod or utimes right after close goes up with it (fsync never waits)"},
			&cli.StringFlag{Name: "cache-size", Usage: "memory for cached blocks (default: 1/16 of RAM, 64MiB to 1GiB)"},
			&cli.StringFlag{Name: "block-size", Value: "1MiB", Usage: "unit of reading and caching"},
			&cli.StringFlag{Name: "max-readahead", Value: "32MiB", Usage: "how far ahead of a sequential reader to fetch"},
			&cli.StringFlag{Name: "disk-cache-size", Value: "0", Usage: "keep blocks evicted from memory in --cache-dir/blocks, up to this size (0: no disk cache)"},
			&cli.DurationFlag{Name: "metadata-ttl", Value: time.Second, Usage: "how long attributes and listings are cached"},
			&cli.DurationFlag{Name: "drain-timeout", Value: time.Minute, Usage: "on SIGTERM or unmount, how long to wait for uploads (the rest stays journaled)"},
			&cli.BoolFlag{Name: "passthrough", Value: true, Usage: "let the kernel read files whose whole data is in the disk cache itself (FUSE passthrough, Linux 6.9+, as root); false: ampfs serves those reads"},
			&cli.BoolFlag{Name: "sync-on-close", Usage: "close(2) waits for the upload, as fsync does (default: close returns once the data is safe on local disk)"},
			&cli.StringFlag{Name: "max-dirty", Value: "2GiB", Usage: "closed data waiting for upload beyond which writers wait"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other local users in; the kernel checks the shown modes"},
			&cli.IntFlag{Name: "uid", Value: -1, Usage: "owner shown for objects that store none (default: the mounting user)"},
			&cli.IntFlag{Name: "gid", Value: -1, Usage: "group shown for objects that store none (default: the mounting user's)"},
			&cli.StringFlag{Name: "file-mode", Value: "0644", Usage: "permission bits (octal) of files that store none"},
			&cli.StringFlag{Name: "dir-mode", Value: "0755", Usage: "permission bits (octal) of directories that store none"},
			&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request (with --log-level debug)"},
		}, append(append(mountCognitoFlags(), logFlags()...), opsFlags()...)...),
		Action: runMount,
	}
}

func runMount(c *cli.Context) error {
	if c.Bool("daemon") && c.Int("ready-fd") == 0 {
		return startDaemon(c)
	}
	if err := openReadyPipe(c); err != nil {
		return err
	}
	log, err := newLogger(c, os.Stderr)
	if err != nil {
		return err
	}
	o := newOps(c, log)
	defer o.close()
	appConfig, err := loadAppConfig(c)
	if err != nil {
		return err
	}
	var bucketName, mnt string
	switch {
	case c.NArg() == 2:
		bucketName, mnt = c.Args().Get(0), c.Args().Get(1)
	case c.NArg() == 1 && appConfig != nil:
		bucketName, mnt = appConfig.Bucket, c.Args().Get(0)
	default:
		return userErrorf("mount needs BUCKET and MOUNTPOINT: ampfs mount [flags] BUCKET MOUNTPOINT (or --config FILE MOUNTPOINT)")
	}
	region := c.String("region")
	if region == "" && appConfig != nil {
		region = appConfig.Region
	}
	if err := checkLayoutFlags(c); err != nil {
		return err
	}
	threshold, err := parseSize(c, "multipart-threshold")
	if err != nil {
		return err
	}
	partSize, err := parseSize(c, "part-size")
	if err != nil {
		return err
	}
	maxDirty, err := parseSize(c, "max-dirty")
	if err != nil {
		return err
	}
	var diskCacheSize int64
	if v := c.String("disk-cache-size"); v != "0" && v != "" {
		if diskCacheSize, err = parseSize(c, "disk-cache-size"); err != nil {
			return err
		}
	}
	blockSize, err := parseSize(c, "block-size")
	if err != nil {
		return err
	}
	readahead, err := parseSize(c, "max-readahead")
	if err != nil {
		return err
	}
	cacheSize := defaultCacheSize()
	if c.IsSet("cache-size") {
		if cacheSize, err = parseSize(c, "cache-size"); err != nil {
			return err
		}
	}
	if cacheSize < 4*blockSize {
		return userErrorf("--cache-size %s holds fewer than 4 blocks of --block-size %s: raise it", c.String("cache-size"), c.String("block-size"))
	}
	limitMemory(cacheSize)
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

	diskCacheDir := ""
	if diskCacheSize > 0 {
		diskCacheDir = filepath.Join(cacheDir, "blocks")
	}
	// Uploads run under this context; it ends only after the drain.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	session, subject, err := signedIn(ctx, c, appConfig, log)
	if err != nil {
		return err
	}
	layout, err := buildLayout(c, appConfig, subject)
	if err != nil {
		return err
	}
	s3b, err := s3store.New(ctx, o.s3Options(s3store.Options{
		Bucket:      bucketName,
		Endpoint:    c.String("endpoint"),
		Region:      region,
		PathStyle:   c.Bool("path-style"),
		Profile:     c.String("profile"),
		Credentials: session.Credentials,
		Logger:      log,
	}))
	if err != nil {
		return userErrorf("S3 client: %v: check --profile, --region and --endpoint", rootCause(err, 0))
	}
	bucket := o.wrapBucket(s3b)
	checkPrefix, listable := fs.ListablePrefix(layout)
	if c.String("layout") == "raw" {
		checkPrefix, listable = "", false
	}
	if c.String("layout") != "raw" && !listable {
		return userErrorf("the storage rules give this user nothing to list: check --identity-id, --guest and --config")
	}
	if err := checkBucket(ctx, bucket, checkPrefix, c.String("endpoint"), checkTimeout); err != nil {
		return err
	}
	ch, err := cache.New(cache.Options{
		Bucket:             bucket,
		StagingDir:         filepath.Join(cacheDir, "staging"),
		JournalDir:         filepath.Join(cacheDir, "journal"),
		DiskCacheDir:       diskCacheDir,
		DiskCacheSize:      diskCacheSize,
		UploadWorkers:      c.Int("upload-workers"),
		Settle:             c.Duration("settle"),
		MaxDirty:           maxDirty,
		MultipartThreshold: threshold,
		PartSize:           partSize,
		UploadConcurrency:  c.Int("upload-concurrency"),
		CacheSize:          cacheSize,
		BlockSize:          blockSize,
		MaxReadahead:       readahead,
		Context:            ctx,
		Logger:             log,
		OnUpload:           o.onUpload,
	})
	if err != nil {
		return userErrorf("%v: check --cache-dir", err)
	}
	// Uploads a previous run journaled but did not finish (kill -9, a
	// crash, an unreachable server) start again now.
	if n, err := ch.Recover(); err != nil {
		return userErrorf("reading the upload journal in %s: %v", cacheDir, err)
	} else if n > 0 {
		log.Info().Int("uploads", n).Msg("resuming uploads journaled by an earlier run")
	}
	owner, err := ownerFlags(c)
	if err != nil {
		return err
	}
	renames := filepath.Join(cacheDir, "renames")
	if err := os.MkdirAll(renames, 0o700); err != nil {
		return userErrorf("%v: check --cache-dir", err)
	}
	fsys, err := fs.New(fs.Options{
		Bucket:        bucket,
		Cache:         ch,
		Layout:        layout,
		UID:           owner.uid,
		GID:           owner.gid,
		FileMode:      owner.fileMode,
		DirMode:       owner.dirMode,
		RenameJournal: renames,
		MetadataTTL:   c.Duration("metadata-ttl"),
		AllowOther:    c.Bool("allow-other"),
		DebugFUSE:     c.Bool("debug-fuse"),
		SyncOnClose:   c.Bool("sync-on-close"),
		NoPassthrough: !c.Bool("passthrough"),
		Logger:        log,
		Presign:       o.presign,
		OnErrno:       o.onErrno(),
	})
	if err != nil {
		return err
	}
	// Directory renames a previous run started and did not finish.
	if n, err := fsys.FinishRenames(ctx); err != nil {
		return userErrorf("finishing an interrupted directory rename: %v", err)
	} else if n > 0 {
		log.Info().Int("renames", n).Msg("finished directory renames journaled by an earlier run")
	}
	if err := o.start(bucketName, region, mountpoint, fsys, ch); err != nil {
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
	go handleSignals(sigs, server, fsys, ch, mountpoint, c.Duration("drain-timeout"), log)
	log.Info().Str("bucket", bucketName).Str("path", mountpoint).Str("cache_dir", cacheDir).Msg("mounted")
	o.mounted()
	stopStats := logCacheStats(ch, log)
	server.Wait()
	stopStats()

	// Unmounted from outside (ampfs unmount, umount): what is committed
	// is uploaded before the process ends, within --drain-timeout.
	drain(fsys, ch, c.Duration("drain-timeout"), log)
	cancel() // ends readahead in flight
	ch.Close()
	log.Info().Str("path", mountpoint).Msg("unmounted")
	return nil
}

// handleSignals makes SIGINT and SIGTERM flush staged data, then unmount.
func handleSignals(sigs <-chan os.Signal, server *fuse.Server, fsys *fs.FS, ch *cache.Cache, mountpoint string, timeout time.Duration, log zerolog.Logger) {
	sig := <-sigs
	notifyStopping(log)
	log.Info().Str("signal", sig.String()).Int("pending", len(ch.Status())).Msg("uploading what is pending, then unmounting")
	drain(fsys, ch, timeout, log)
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

// identityIDPattern is a Cognito identity id: REGION:UUID.
var identityIDPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkLayoutFlags refuses flag combinations that make no sense, before
// anything is sent.
func checkLayoutFlags(c *cli.Context) error {
	id, guest := c.String("identity-id"), c.Bool("guest")
	switch c.String("layout") {
	case "raw":
		if id != "" || guest {
			return userErrorf("--identity-id and --guest go with --layout amplify, not raw")
		}
		return nil
	case "amplify":
	default:
		return userErrorf("--layout %q is not a layout: use amplify or raw", c.String("layout"))
	}
	switch {
	case c.IsSet("prefix"):
		return userErrorf("--prefix goes with --layout raw; the amplify layout shows public/, protected/ and private/")
	case id != "" && guest:
		return userErrorf("give --identity-id or --guest, not both")
	case id != "" && !identityIDPattern.MatchString(id):
		return userErrorf("--identity-id %q is not a Cognito identity id: it looks like us-east-1:0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", id)
	}
	return nil
}

// signedIn decides who the mount acts as, and with which credentials:
//
//   - --layout raw, or --identity-id: the SDK's default chain (operators,
//     local servers), with the identity as given;
//   - --guest: the identity pool's guest identity when the app's pools are
//     known (--config), else the default chain;
//   - otherwise the session 'ampfs login' stored: the user's identity and
//     groups, with identity-pool credentials renewed before they expire.
func signedIn(ctx context.Context, c *cli.Context, appConfig *amplifyconfig.Config, log zerolog.Logger) (*auth.Session, access.Subject, error) {
	id, guest := c.String("identity-id"), c.Bool("guest")
	groups := c.StringSlice("group")
	pool := poolFromFlags(c, appConfig)
	if appConfig != nil && c.String("region") != "" && appConfig.AuthRegion != "" {
		pool.Region = appConfig.AuthRegion // --region is the bucket's here
	}
	switch {
	case c.String("layout") == "raw" || id != "" || (guest && pool.IdentityPoolID == ""):
		s, err := auth.Default(ctx, auth.Options{Profile: c.String("profile"), Logger: log})
		if err != nil {
			return nil, access.Subject{}, userErrorf("credentials: %v: check --profile / AWS_PROFILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", rootCause(err, 0))
		}
		return s, access.Subject{Authenticated: !guest, IdentityID: id, Groups: groups}, nil
	case guest:
		cctx, cancel := context.WithTimeout(ctx, cognitoTimeout)
		defer cancel()
		s, err := auth.Guest(cctx, pool, log)
		if err != nil {
			return nil, access.Subject{}, userErrorf("guest sign-in: %v", err)
		}
		log.Info().Str("identity_id", s.IdentityID).Msg("signed in as a guest")
		return &s.Session, access.Subject{IdentityID: s.IdentityID, Groups: groups}, nil
	}
	stored, err := storedSession(c)
	if err != nil {
		if errors.Is(err, auth.ErrNoSession) || strings.Contains(err.Error(), auth.ErrNoSession.Error()) {
			return nil, access.Subject{}, userErrorf("nobody is signed in: run 'ampfs login --config amplify_outputs.json' first, or give --guest, or --identity-id with AWS credentials")
		}
		return nil, access.Subject{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, cognitoTimeout)
	defer cancel()
	s, err := auth.Resume(cctx, stored, log)
	if err != nil {
		return nil, access.Subject{}, userErrorf("%s: %v", stored.Username, err)
	}
	log.Info().Str("user", s.Username).Str("identity_id", s.IdentityID).Time("expires", s.CredentialsExpire()).Msg("signed in")
	return &s.Session, access.Subject{Authenticated: true, IdentityID: s.IdentityID, Groups: append(groups, s.Groups...)}, nil
}

// buildLayout turns --layout and the subject into the namespace.
func buildLayout(c *cli.Context, appConfig *amplifyconfig.Config, subject access.Subject) (fs.Layout, error) {
	if c.String("layout") == "raw" {
		return fs.RawLayout(c.String("prefix")), nil
	}
	rules := access.Gen1()
	if appConfig != nil && appConfig.Paths != nil {
		var err error
		if rules, err = access.New(appConfig.Paths); err != nil {
			return nil, userErrorf("--config: %v", err)
		}
	}
	layout, err := fs.AmplifyLayout(rules, subject)
	if err != nil {
		return nil, userErrorf("%v", err)
	}
	return layout, nil
}

// mountCognitoFlags are the Cognito flags (--region here is the bucket's;
// the pools' region comes from --config).
func mountCognitoFlags() []cli.Flag {
	var out []cli.Flag
	for _, f := range cognitoFlags() {
		if f.Names()[0] != "region" {
			out = append(out, f)
		}
	}
	return out
}

// defaultCacheSize is 1/16 of the machine's memory, between 64 MiB and
// 1 GiB.
func defaultCacheSize() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 256 << 20
	}
	return min(max(int64(si.Totalram)*int64(si.Unit)/16, 64<<20), 1<<30)
}

// limitMemory sets a soft limit for the Go heap at the block cache plus
// headroom, so the garbage of replaced blocks is collected before the
// process grows far past --cache-size. GOMEMLIMIT, when set, wins.
func limitMemory(cacheSize int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(cacheSize + 96<<20)
	}
}

// logCacheStats logs the cache's counters at debug level every 30 s while
// they change, and once at the end.
func logCacheStats(c *cache.Cache, log zerolog.Logger) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	logStats := func() cache.Stats {
		st := c.Stats()
		log.Debug().Int64("hits", st.Hits).Int64("misses", st.Misses).Int64("evictions", st.Evictions).
			Int64("fetched", st.BytesFetched).Int64("prefetched", st.BytesPrefetched).Int("blocks", st.Blocks).
			Int64("whole_hits", st.WholeHits).Int("whole_files", st.WholeFiles).Int64("disk_bytes", st.DiskBytes).Msg("cache")
		return st
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		var last cache.Stats
		for {
			select {
			case <-t.C:
				if st := c.Stats(); st != last {
					last = logStats()
				}
			case <-done:
				logStats()
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// drain commits files still open and waits for the upload queue, at most
// timeout; what is left stays journaled for the next mount and is said.
func drain(fsys *fs.FS, ch *cache.Cache, timeout time.Duration, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := fsys.FlushAll(ctx); err != nil {
		log.Error().Err(err).Msg("could not commit every open file")
	}
	if err := ch.Drain(ctx); err != nil {
		log.Warn().Err(err).Msg("not everything was uploaded")
		return
	}
}

// owner is what --uid, --gid, --file-mode and --dir-mode say objects
// without stored metadata show.
type owner struct{ uid, gid, fileMode, dirMode uint32 }

func ownerFlags(c *cli.Context) (owner, error) {
	o := owner{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	if v := c.Int("uid"); v >= 0 {
		o.uid = uint32(v)
	}
	if v := c.Int("gid"); v >= 0 {
		o.gid = uint32(v)
	}
	for _, f := range []struct {
		name string
		dst  *uint32
	}{{"file-mode", &o.fileMode}, {"dir-mode", &o.dirMode}} {
		v, err := strconv.ParseUint(c.String(f.name), 8, 32)
		if err != nil || v == 0 || v > 0o7777 {
			return owner{}, userErrorf("--%s %q: want octal permission bits such as 0644", f.name, c.String(f.name))
		}
		*f.dst = uint32(v)
	}
	return o, nil
}
