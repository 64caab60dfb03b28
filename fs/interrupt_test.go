package fs

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

// gatedBucket holds the requests gate picks until release is closed, or
// until their context ends, as a real S3 client does.
type gatedBucket struct {
	*memstore.Bucket
	op, key string
	entered chan struct{} // closed when the gated request arrives
	release chan struct{}
	once    sync.Once
}

func (b *gatedBucket) wait(ctx context.Context, op, key string) error {
	if op != b.op || key != b.key {
		return nil
	}
	b.once.Do(func() { close(b.entered) })
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return &store.OpError{Op: op, Key: key, Kind: store.ErrCanceled, Err: ctx.Err()}
	}
}

func (b *gatedBucket) List(ctx context.Context, in store.ListInput) (store.ListPage, error) {
	// key is "prefix|delimiter": a readdir lists with "/", a lookup not.
	if err := b.wait(ctx, memstore.OpListObjectsV2, in.Prefix+"|"+in.Delimiter); err != nil {
		return store.ListPage{}, err
	}
	return b.Bucket.List(ctx, in)
}

func (b *gatedBucket) Head(ctx context.Context, key string) (store.ObjectInfo, error) {
	if err := b.wait(ctx, memstore.OpHeadObject, key); err != nil {
		return store.ObjectInfo{}, err
	}
	return b.Bucket.Head(ctx, key)
}

func (b *gatedBucket) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, opts store.PutOptions) (store.ObjectInfo, error) {
	if err := b.wait(ctx, memstore.OpPutObject, key); err != nil {
		return store.ObjectInfo{}, err
	}
	return b.Bucket.Put(ctx, key, body, size, opts)
}

func (b *gatedBucket) Copy(ctx context.Context, src, dst string, opts store.CopyOptions) (store.ObjectInfo, error) {
	if err := b.wait(ctx, memstore.OpCopyObject, src); err != nil {
		return store.ObjectInfo{}, err
	}
	return b.Bucket.Copy(ctx, src, dst, opts)
}

func (b *gatedBucket) Delete(ctx context.Context, key string) error {
	if err := b.wait(ctx, memstore.OpDeleteObject, key); err != nil {
		return err
	}
	return b.Bucket.Delete(ctx, key)
}

// interrupted runs call on a thread of its own and, once the gated
// request is at the server, signals that thread a few times (SIGURG, Go's
// preemption signal, which the runtime handles and the call restarts
// after): the kernel sends FUSE an INTERRUPT for each, and go-fuse cancels
// the request's context. Then it releases the request and returns call's
// error.
func interrupted(t *testing.T, b *gatedBucket, call func() error) error {
	t.Helper()
	tids := make(chan int, 1)
	errs := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		tids <- unix.Gettid()
		errs <- call()
	}()
	tid := <-tids
	select {
	case <-b.entered:
	case err := <-errs:
		t.Fatalf("the call returned (%v) before its request reached the gate", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the gated request never came")
	}
	for range 5 {
		if err := unix.Tgkill(os.Getpid(), tid, unix.SIGURG); err == unix.ESRCH {
			break // the call returned and its thread is gone
		} else if err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(b.release)
	select {
	case err := <-errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not return after its request was released")
		return nil
	}
}

// A signal to a thread waiting in close, stat, rename or unlink does not
// make the call fail with EINTR: each runs to its end (uninterrupted).
// Before, close(2) with --sync-on-close failed with EINTR while a
// finished upload's data stayed committed, and a rename or unlink could
// be reported failed after the server had done it; Go programs hit that
// under load (posixtest's DirSeek, ReadDirBasic, FstatDeleted and
// OpenSymlinkRace did, through a real mount).
func TestInterruptsDoNotFailCalls(t *testing.T) {
	for _, tc := range []struct {
		name, op, key string
		setup         func(t *testing.T, b *memstore.Bucket)
		call          func(mnt string) error
		after         func(t *testing.T, b *memstore.Bucket)
	}{
		{
			name: "close waiting for the upload", op: memstore.OpPutObject, key: "f",
			call: func(mnt string) error {
				fd, err := unix.Open(filepath.Join(mnt, "f"), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
				if err != nil {
					return err
				}
				if _, err := unix.Write(fd, []byte("data")); err != nil {
					unix.Close(fd)
					return err
				}
				return unix.Close(fd)
			},
			after: func(t *testing.T, b *memstore.Bucket) {
				if got := object(t, b, "f"); string(got) != "data" {
					t.Errorf("f = %q", got)
				}
			},
		},
		{
			name: "stat of a name no listing knows", op: memstore.OpHeadObject, key: "g",
			setup: func(t *testing.T, b *memstore.Bucket) { put(t, b, "g", []byte("g")) },
			call: func(mnt string) error {
				var st unix.Stat_t
				return unix.Lstat(filepath.Join(mnt, "g"), &st)
			},
		},
		{
			name: "rename", op: memstore.OpCopyObject, key: "h",
			setup: func(t *testing.T, b *memstore.Bucket) { put(t, b, "h", []byte("h")) },
			call: func(mnt string) error {
				return unix.Rename(filepath.Join(mnt, "h"), filepath.Join(mnt, "i"))
			},
			after: func(t *testing.T, b *memstore.Bucket) {
				if _, _, ok := b.Object("h"); ok {
					t.Errorf("h is still there after the rename: %q", b.Keys())
				}
				object(t, b, "i")
			},
		},
		{
			// Under load the SDK reported the canceled LIST as a
			// response it could not decode, which became EINVAL
			// (posixtest's ReadDirBasic in `make test`).
			name: "readdir", op: memstore.OpListObjectsV2, key: "d/|/",
			setup: func(t *testing.T, b *memstore.Bucket) { put(t, b, "d/x", []byte("x")) },
			call: func(mnt string) error {
				fd, err := unix.Open(filepath.Join(mnt, "d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				_, err = unix.Getdents(fd, make([]byte, 4096))
				return err
			},
		},
		{
			name: "unlink", op: memstore.OpDeleteObject, key: "j",
			setup: func(t *testing.T, b *memstore.Bucket) { put(t, b, "j", []byte("j")) },
			call:  func(mnt string) error { return unix.Unlink(filepath.Join(mnt, "j")) },
			after: func(t *testing.T, b *memstore.Bucket) {
				if _, _, ok := b.Object("j"); ok {
					t.Errorf("j is still there after the unlink")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &gatedBucket{Bucket: memstore.New(memstore.Options{}), op: tc.op, key: tc.key,
				entered: make(chan struct{}), release: make(chan struct{})}
			if tc.setup != nil {
				tc.setup(t, b.Bucket)
			}
			mnt, _ := mountBucket(t, b, Options{SyncOnClose: true})
			if err := interrupted(t, b, func() error { return tc.call(mnt) }); err != nil {
				t.Errorf("%v, want success (EINTR is %v)", err, err == syscall.EINTR)
			}
			if tc.after != nil {
				tc.after(t, b.Bucket)
			}
		})
	}
}
