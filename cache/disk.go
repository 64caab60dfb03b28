package cache

import (
	"cmp"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// DiskCache keeps clean blocks evicted from memory in files under a
// directory, bounded in bytes. It is a cache: nothing in it is ever the only
// copy of data, so writes are never fsynced and a crash may lose any of it.
// A torn or damaged file is never served (see below), only deleted.
//
// # Layout
//
// One file per block: dir/ab/ab…, named by the hex SHA-256 of (block size,
// key, ETag, index), spread over 256 subdirectories. No object key, however
// crafted ("../x", "/", NUL), can name a path outside dir, and blocks cut
// with another --block-size are never confused with these. A file is
// written under a temporary name and renamed into place, so a reader sees
// a whole file or none. It holds a header (magic, block size, key, ETag,
// index, data length, CRC-32C of the data) and the data; Get checks all of
// it, and a mismatch deletes the file and is a miss.
//
// # Size bound
//
// The bytes of the files under dir never exceed maxBytes, counting each
// file rounded up to 4 KiB (a file system block, so the bound also holds
// for du, up to the 256 directories themselves). Space is reserved before a
// file is created, and the bytes of an evicted or damaged file are released
// only once the file is deleted; a file that cannot be deleted keeps its
// bytes counted. The least recently used blocks go first. At start-up the
// index is rebuilt from the directory, most recently used first (Get and
// Put stamp a file's mtime); malformed files, temporary files of a crashed
// run and files that no longer fit are deleted. A lock file keeps two
// mounts from sharing dir, which would break the bound.
//
// # Writes
//
// Put only queues the block (the queue holds at most about 32 MiB): one
// writer goroutine evicts, writes and renames. When the queue is full, or a
// write fails (ENOSPC, EIO), the block is simply not cached.
//
// # Lock order
//
// DiskCache.mu is a leaf: nothing else is locked while holding it, so it
// may be taken under Cache.mu. It is never held during file I/O.
type DiskCache struct {
	dir       string
	maxBytes  int64
	blockSize int64
	log       zerolog.Logger
	now       func() time.Time // stamps mtimes: the recency that survives a restart

	lock   *os.File // holds an exclusive flock on dir/lock while open
	queue  chan diskPut
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the writer returns
	closer sync.Once

	hits, misses, evictions, dropped, corrupt atomic.Int64
	wholeHits, wholeAdded                     atomic.Int64 // whole.go

	mu sync.Mutex
	// lru holds a *diskEntry per block on disk, most recently used first.
	// GUARDED_BY(mu)
	lru *list.List
	// index finds a block's element in lru. GUARDED_BY(mu)
	index map[blockKey]*list.Element
	// used counts every file that may exist under dir: indexed blocks,
	// writes in progress, and blocks taken out of the index whose file is
	// not deleted yet (or could not be). GUARDED_BY(mu)
	// INVARIANT: bytes of the files under dir <= used <= maxBytes.
	used int64
	// assembling holds the objects whose whole file is queued or being
	// written (whole.go). GUARDED_BY(mu)
	assembling map[blockKey]bool
}

type diskEntry struct {
	k    blockKey
	name string // 64 hex digits
	size int64  // bytes counted in used
	// whole is set for a whole-file entry (k.idx == wholeIdx; whole.go).
	// Its fields are GUARDED_BY(DiskCache.mu).
	whole *wholeState
}

// diskPut is a block for the writer, or (fn != nil) a function it runs in
// order with the writes: a barrier for Close and tests.
type diskPut struct {
	k     blockKey
	data  []byte
	fn    func()
	whole *wholePut // a whole file to add instead (whole.go)
}

const (
	diskMagic = "AMB1"
	// diskHdrLen: magic, block size, key length, ETag length, index, data
	// length, CRC-32C; then key and ETag.
	diskHdrLen   = 4 + 8 + 4 + 4 + 8 + 4 + 4
	diskMaxKey   = 4096 // S3 keys are at most 1024 bytes
	diskMaxETag  = 1024
	diskUnit     = 4096     // a file's bytes are counted in units of this
	diskQueueMax = 32 << 20 // bytes of blocks waiting for the writer
)

var diskCRC = crc32.MakeTable(crc32.Castagnoli)

// NewDiskCache opens (creating it if needed) the disk cache in dir, bounded
// to maxBytes bytes of blocks of blockSize bytes, and rebuilds its index
// from the files already there. It fails if dir is in use by another
// DiskCache, if maxBytes cannot hold one block, or on an I/O error; a
// caller may then run without a disk cache.
func NewDiskCache(dir string, maxBytes, blockSize int64, log zerolog.Logger) (*DiskCache, error) {
	if blockSize <= 0 || blockSize > 1<<31 {
		return nil, fmt.Errorf("disk cache: block size %d out of range", blockSize)
	}
	if one := diskSize(diskHdrLen + diskMaxKey + diskMaxETag + blockSize); maxBytes < one {
		return nil, fmt.Errorf("disk cache: size %d bytes is less than one block (%d bytes)", maxBytes, one)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("disk cache: %s is in use by another mount: %w", dir, err)
	}
	depth := int(min(max(diskQueueMax/blockSize, 2), 64))
	d := &DiskCache{
		dir: dir, maxBytes: maxBytes, blockSize: blockSize, log: log, now: time.Now,
		lock: lock, queue: make(chan diskPut, depth),
		done: make(chan struct{}), exited: make(chan struct{}),
		lru: list.New(), index: map[blockKey]*list.Element{}, assembling: map[blockKey]bool{},
	}
	if err := d.load(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	go d.run()
	return d, nil
}

// Put caches a copy of block k in the background. It never waits for I/O:
// if the writer is behind, the block is dropped. data must not be modified
// afterwards (cached blocks never are). Put after Close does nothing.
func (d *DiskCache) Put(k blockKey, data []byte) {
	if int64(len(data)) > d.blockSize {
		d.dropped.Add(1)
		return
	}
	d.mu.Lock()
	el, ok := d.index[k]
	if ok {
		d.lru.MoveToFront(el)
	}
	_, whole := d.index[wholeKey(k)]
	d.mu.Unlock()
	if ok || whole { // a whole file already holds the block
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	select {
	case d.queue <- diskPut{k: k, data: data}:
	default:
		d.dropped.Add(1)
	}
}

// Get returns block k if it is on disk and intact. A damaged or misplaced
// file is deleted and reported as a miss.
func (d *DiskCache) Get(k blockKey) ([]byte, bool) {
	d.mu.Lock()
	el, ok := d.index[k]
	if ok {
		d.lru.MoveToFront(el)
	}
	d.mu.Unlock()
	if !ok {
		if data, ok := d.blockOfWhole(k); ok {
			d.hits.Add(1)
			return data, true
		}
		d.misses.Add(1)
		return nil, false
	}
	e := el.Value.(*diskEntry)
	p := d.path(e.name)
	buf, err := os.ReadFile(p)
	var data []byte
	if err == nil {
		data, err = d.decode(k, buf)
	}
	if err != nil {
		d.misses.Add(1)
		if !errors.Is(err, fs.ErrNotExist) {
			d.corrupt.Add(1)
			d.log.Debug().Str("op", "diskcache.get").Str("key", k.key).Int64("off", k.idx*d.blockSize).Err(err).Msg("removing damaged cache file")
		}
		d.drop(el)
		return nil, false
	}
	_ = os.Chtimes(p, time.Time{}, d.now()) // recency for the next start-up; best effort
	d.hits.Add(1)
	return data, true
}

// Contains reports whether block k is indexed, without I/O or touching its
// recency: for readahead, which need not fetch what the disk holds.
func (d *DiskCache) Contains(k blockKey) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.index[k]
	if !ok {
		_, ok = d.index[wholeKey(k)]
	}
	return ok
}

// DiskStats are a DiskCache's counters since it was opened.
type DiskStats struct {
	Hits, Misses int64 // Get calls
	Evictions    int64 // blocks deleted to make room
	Dropped      int64 // blocks not cached: queue full, too large, write error
	Corrupt      int64 // damaged files found by Get or OpenWhole (and deleted)
	Bytes        int64 // counted on disk now, files rounded up to 4 KiB
	Blocks       int   // blocks on disk now
	WholeFiles   int   // whole files on disk now (two files each)
	MaxBytes     int64
	WholeHits    int64 // OpenWhole calls that found an intact whole file
	WholeAdded   int64 // whole files written (whole.go)
}

// Stats returns a snapshot of the counters.
func (d *DiskCache) Stats() DiskStats {
	d.mu.Lock()
	used, n, wholes := d.used, d.lru.Len(), 0
	for el := d.lru.Front(); el != nil; el = el.Next() {
		if el.Value.(*diskEntry).whole != nil {
			wholes++
		}
	}
	d.mu.Unlock()
	return DiskStats{
		Hits: d.hits.Load(), Misses: d.misses.Load(), Evictions: d.evictions.Load(),
		Dropped: d.dropped.Load(), Corrupt: d.corrupt.Load(),
		Bytes: used, Blocks: n - wholes, WholeFiles: wholes, MaxBytes: d.maxBytes,
		WholeHits: d.wholeHits.Load(), WholeAdded: d.wholeAdded.Load(),
	}
}

// Close writes the blocks still queued, stops the writer and releases dir.
// The files stay for the next start. Get keeps working after Close; Put
// does nothing.
func (d *DiskCache) Close() {
	d.closer.Do(func() {
		close(d.done)
		<-d.exited
		d.lock.Close()
	})
}

// do runs fn on the writer after the writes queued before it, and waits.
func (d *DiskCache) do(fn func()) {
	ran := make(chan struct{})
	select {
	case d.queue <- diskPut{fn: func() { fn(); close(ran) }}:
	case <-d.exited:
		return
	}
	select {
	case <-ran:
	case <-d.exited:
	}
}

func (d *DiskCache) run() {
	defer close(d.exited)
	for {
		select {
		case p := <-d.queue:
			d.handle(p)
		case <-d.done:
			for {
				select {
				case p := <-d.queue:
					d.handle(p)
				default:
					return
				}
			}
		}
	}
}

// handle writes one block, evicting the least recently used first.
func (d *DiskCache) handle(p diskPut) {
	if p.fn != nil {
		p.fn()
		return
	}
	if p.whole != nil {
		d.handleWhole(p.whole)
		return
	}
	size := diskSize(int64(diskHdrLen + len(p.k.key) + len(p.k.etag) + len(p.data)))
	if size > d.maxBytes || len(p.k.key) > diskMaxKey || len(p.k.etag) > diskMaxETag {
		d.dropped.Add(1)
		return
	}
	d.mu.Lock()
	if el, ok := d.index[p.k]; ok {
		d.lru.MoveToFront(el)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	if !d.reserve(size, nil) {
		d.dropped.Add(1)
		return
	}
	name := diskName(d.blockSize, p.k)
	if err := d.write(name, p.k, p.data, size); err != nil {
		d.dropped.Add(1)
		d.log.Debug().Str("op", "diskcache.put").Str("key", p.k.key).Int64("off", p.k.idx*d.blockSize).Err(err).Msg("block not cached on disk")
		return
	}
	d.mu.Lock()
	d.index[p.k] = d.lru.PushFront(&diskEntry{k: p.k, name: name, size: size})
	d.mu.Unlock()
}

// write creates the block's file under a temporary name and renames it into
// place. size bytes are reserved in used; on failure they are released once
// the temporary file is gone.
func (d *DiskCache) write(name string, k blockKey, data []byte, size int64) (err error) {
	final := d.path(name)
	f, err := os.CreateTemp(filepath.Dir(final), "tmp-")
	if errors.Is(err, fs.ErrNotExist) { // a subdirectory deleted under us
		if err = os.MkdirAll(filepath.Dir(final), 0o700); err == nil {
			f, err = os.CreateTemp(filepath.Dir(final), "tmp-")
		}
	}
	if err != nil {
		d.release(size)
		return err
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			f.Close()
		}
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			d.log.Debug().Str("op", "diskcache.put").Str("path", tmp).Err(rmErr).Msg("temporary file left behind; its bytes stay counted")
			return
		}
		d.release(size)
	}()
	// No fsync: losing the cache on a crash is fine, and the rename means a
	// torn file is never under a block's name (a file the crash truncated
	// after the rename fails its length or CRC check instead).
	if _, err = f.Write(appendHeader(make([]byte, 0, diskHdrLen+len(k.key)+len(k.etag)), d.blockSize, k, data)); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	closed = true
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chtimes(tmp, time.Time{}, d.now()); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// reserve evicts the least recently used entries until size more bytes fit,
// then counts them in used. Entries in use (whole files open) and those
// keep says to keep are not evicted. It reports false if the bytes do not
// fit even so (or a file could not be deleted). Only the writer calls it.
func (d *DiskCache) reserve(size int64, keep func(*diskEntry) bool) bool {
	var victims []*diskEntry
	d.mu.Lock()
	for free, el := d.maxBytes-d.used, d.lru.Back(); free < size && el != nil; {
		e, prev := el.Value.(*diskEntry), el.Prev()
		if (e.whole == nil || e.whole.users == 0) && (keep == nil || !keep(e)) {
			d.lru.Remove(el)
			delete(d.index, e.k)
			victims = append(victims, e)
			free += e.size
		}
		el = prev
	}
	d.mu.Unlock()
	for _, e := range victims {
		d.unlink(e)
	}
	d.evictions.Add(int64(len(victims)))

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.used+size > d.maxBytes {
		return false
	}
	d.used += size
	return true
}

func (d *DiskCache) release(size int64) {
	d.mu.Lock()
	d.used -= size
	d.mu.Unlock()
}

// drop takes el out of the index, unless someone already has, and deletes
// its file.
func (d *DiskCache) drop(el *list.Element) {
	e := el.Value.(*diskEntry)
	d.mu.Lock()
	if cur, ok := d.index[e.k]; !ok || cur != el {
		d.mu.Unlock()
		return
	}
	d.lru.Remove(el)
	delete(d.index, e.k)
	d.mu.Unlock()
	d.unlink(e)
}

// unlink deletes the file of an entry already out of the index, then
// releases its bytes. Whoever takes an entry out of the index calls it
// exactly once.
func (d *DiskCache) unlink(e *diskEntry) {
	if e.whole != nil {
		d.unlinkWhole(e)
		return
	}
	if err := os.Remove(d.path(e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.log.Debug().Str("op", "diskcache.evict").Str("key", e.k.key).Err(err).Msg("cannot delete cache file; its bytes stay counted")
		return
	}
	d.release(e.size)
}

func (d *DiskCache) path(name string) string {
	return filepath.Join(d.dir, name[:2], name)
}

// load rebuilds the index from the files under dir (called before the
// writer starts, so without contention).
func (d *DiskCache) load() error {
	type found struct {
		e     *diskEntry
		mtime time.Time
	}
	var all []found
	for i := range 256 {
		sub := fmt.Sprintf("%02x", i)
		subdir := filepath.Join(d.dir, sub)
		if err := os.MkdirAll(subdir, 0o700); err != nil {
			return err
		}
		ents, err := os.ReadDir(subdir)
		if err != nil {
			return err
		}
		for _, de := range ents {
			p := filepath.Join(subdir, de.Name())
			if !de.Type().IsRegular() {
				d.log.Debug().Str("op", "diskcache.load").Str("path", p).Msg("not a cache file; left alone")
				continue
			}
			if isWholeName(de.Name()) {
				continue // loadWhole below
			}
			e, mtime, err := d.check(sub, de.Name())
			if err != nil {
				d.log.Debug().Str("op", "diskcache.load").Str("path", p).Err(err).Msg("removing malformed cache file")
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				continue
			}
			all = append(all, found{e, mtime})
		}
		wholes, err := d.loadWhole(sub, ents)
		if err != nil {
			return err
		}
		for _, w := range wholes {
			all = append(all, found(w))
		}
	}
	slices.SortFunc(all, func(a, b found) int {
		return cmp.Or(b.mtime.Compare(a.mtime), cmp.Compare(a.e.name, b.e.name))
	})
	full := false
	for _, f := range all {
		if full = full || d.used+f.e.size > d.maxBytes; full {
			if f.e.whole != nil {
				d.used += f.e.size // unlinkWhole releases them
				d.unlinkWhole(f.e)
				continue
			}
			if err := os.Remove(d.path(f.e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		d.used += f.e.size
		d.index[f.e.k] = d.lru.PushBack(f.e)
	}
	return nil
}

// check reads the header of dir/sub/name and returns its entry if the file
// is a whole block of this block size stored under its own name.
func (d *DiskCache) check(sub, name string) (*diskEntry, time.Time, error) {
	if len(name) != 64 || name[:2] != sub {
		return nil, time.Time{}, errors.New("not a block file name")
	}
	if _, err := hex.DecodeString(name); err != nil {
		return nil, time.Time{}, errors.New("not a block file name")
	}
	f, err := os.Open(d.path(name))
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	buf := make([]byte, min(st.Size(), diskHdrLen+diskMaxKey+diskMaxETag))
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, time.Time{}, err
	}
	h, n, err := parseHeader(buf, d.blockSize)
	if err != nil {
		return nil, time.Time{}, err
	}
	if int64(n+h.dataLen) != st.Size() {
		return nil, time.Time{}, fmt.Errorf("%d bytes, header says %d", st.Size(), n+h.dataLen)
	}
	if diskName(d.blockSize, h.k) != name {
		return nil, time.Time{}, errors.New("header names another block")
	}
	return &diskEntry{k: h.k, name: name, size: diskSize(st.Size())}, st.ModTime(), nil
}

// decode returns the data of a block file's contents after checking they
// are block k, whole and intact.
func (d *DiskCache) decode(k blockKey, buf []byte) ([]byte, error) {
	h, n, err := parseHeader(buf, d.blockSize)
	if err != nil {
		return nil, err
	}
	if h.k != k {
		return nil, errors.New("file holds another block")
	}
	data := buf[n:]
	if len(data) != h.dataLen {
		return nil, fmt.Errorf("%d bytes of data, header says %d", len(data), h.dataLen)
	}
	if crc32.Checksum(data, diskCRC) != h.crc {
		return nil, errors.New("CRC mismatch")
	}
	return data, nil
}

type diskHeader struct {
	k       blockKey
	dataLen int
	crc     uint32
}

func appendHeader(b []byte, blockSize int64, k blockKey, data []byte) []byte {
	b = append(b, diskMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(blockSize))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(k.key)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(k.etag)))
	b = binary.LittleEndian.AppendUint64(b, uint64(k.idx))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(data, diskCRC))
	b = append(b, k.key...)
	return append(b, k.etag...)
}

// parseHeader parses the header at the start of b, of a file that must hold
// a block of blockSize bytes, and returns it with its length.
func parseHeader(b []byte, blockSize int64) (diskHeader, int, error) {
	var h diskHeader
	if len(b) < diskHdrLen || string(b[:4]) != diskMagic {
		return h, 0, errors.New("bad header")
	}
	le := binary.LittleEndian
	if bs := int64(le.Uint64(b[4:])); bs != blockSize {
		return h, 0, fmt.Errorf("block size %d, want %d", bs, blockSize)
	}
	keyLen, etagLen := int(le.Uint32(b[12:])), int(le.Uint32(b[16:]))
	h.k.idx = int64(le.Uint64(b[20:]))
	h.dataLen = int(le.Uint32(b[28:]))
	h.crc = le.Uint32(b[32:])
	if keyLen > diskMaxKey || etagLen > diskMaxETag || int64(h.dataLen) > blockSize || h.k.idx < 0 {
		return h, 0, errors.New("bad header")
	}
	n := diskHdrLen + keyLen + etagLen
	if len(b) < n {
		return h, 0, errors.New("short header")
	}
	h.k.key = string(b[diskHdrLen : diskHdrLen+keyLen])
	h.k.etag = string(b[diskHdrLen+keyLen : n])
	return h, n, nil
}

// diskName is the file name of block k: a hash, so that no key names a
// path outside the cache dir. Lengths are hashed too, so ("ab", "c") and
// ("a", "bc") differ.
func diskName(blockSize int64, k blockKey) string {
	h := sha256.New()
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, uint64(blockSize))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(k.key)))
	b = append(b, k.key...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(k.etag)))
	b = append(b, k.etag...)
	b = binary.LittleEndian.AppendUint64(b, uint64(k.idx))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// diskSize is the bytes a file of n bytes is counted for.
func diskSize(n int64) int64 {
	return (n + diskUnit - 1) / diskUnit * diskUnit
}
