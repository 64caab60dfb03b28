package cache

import (
	"bytes"
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
	"strings"
	"time"
)

// Whole files: the disk cache also keeps whole objects, as their raw bytes
// at offset 0, so that the file system can hand such a file to the kernel
// (FUSE passthrough: reads never reach this process) or serve reads from it
// with pread.
//
// A whole file is an entry like a block's, in the same LRU and under the
// same byte bound, keyed (key, ETag, wholeIdx). On disk it is two files in
// the subdirectory of its name (the hex SHA-256 of "whole", key and ETag):
// NAME.w holds the data, NAME.m a small sidecar (magic, data length,
// CRC-32C of the data, key, ETag, and a CRC-32C of the sidecar itself).
// Both are written under temporary names and renamed into place, data
// first, and deleted sidecar first, so a sidecar names data that was whole
// when it was renamed. As with blocks nothing is fsynced: a crash can
// still leave a torn or zero-filled data file behind a good sidecar, so
// the data is checked against the sidecar's CRC the first time a run uses
// it (files written by this run are known good). A mismatch deletes the
// entry and is a miss, never served.
//
// Whole files come from two places:
//
//   - A staging file whose last upload is what it holds (its generation
//     was uploaded and not changed since) is adopted when its last holder
//     lets go, instead of being deleted: it is linked into the cache (a
//     copy if the staging dir is on another file system). Its content is
//     the object with the ETag that upload returned.
//   - When every block of an object is in the memory or disk cache,
//     Cache.Assemble writes them out as one file; the object's blocks on
//     disk are then deleted, as the whole file serves them (Get reads a
//     block from it).
//
// Both are done by the disk cache's writer goroutine, never on a reader's
// path. A whole file may take at most a quarter of the cache, so that one
// large file does not flush everything else.
//
// An open WholeFile pins its entry: it is not evicted while open. An entry
// deleted while open (damage found by another user) keeps its bytes
// counted until the last WholeFile closes.

// wholeIdx is the block index of a whole-file entry.
const wholeIdx = -1

const wholeMagic = "AMW1"

// wholeMetaLen: magic, data length, data CRC, key length, ETag length;
// then key, ETag and the sidecar's own CRC.
const wholeMetaLen = 4 + 8 + 4 + 4 + 4

func wholeKey(k blockKey) blockKey { return blockKey{k.key, k.etag, wholeIdx} }

// wholeState is what the index knows of a whole file. GUARDED_BY(DiskCache.mu)
type wholeState struct {
	size     int64  // data bytes
	crc      uint32 // CRC-32C of the data
	verified bool   // checked against crc in this run, or written by it
	users    int    // open WholeFiles; the entry is not evicted while > 0
	gone     bool   // deleted while open: the last Close releases its bytes
}

// wholePut is a whole file for the writer: a staging file (f open on
// it, at path, which the writer removes) or blocks to assemble (read).
type wholePut struct {
	k    blockKey
	size int64
	f    *os.File
	path string
	read func(idx int64) ([]byte, bool)
}

// WholeFile is an open whole local copy of one object version. Close it
// when done; it pins the cache entry meanwhile.
type WholeFile struct {
	f    *os.File
	size int64
	d    *DiskCache
	e    *diskEntry
}

// Fd is the descriptor of the local file, open read-only: for the kernel
// (FUSE passthrough), which takes its own reference to the file.
func (w *WholeFile) Fd() int { return int(w.f.Fd()) }

// Size is the object's size in bytes.
func (w *WholeFile) Size() int64 { return w.size }

// ReadAt reads like a file: io.EOF at and past the end.
func (w *WholeFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= w.size {
		return 0, io.EOF
	}
	return w.f.ReadAt(p, off)
}

// Close closes the file and unpins its entry.
func (w *WholeFile) Close() error {
	err := w.f.Close()
	w.d.unpin(w.e)
	return err
}

// OpenWhole returns the whole file of object (key, etag) if the cache
// holds one and it is intact.
func (d *DiskCache) OpenWhole(key, etag string) (*WholeFile, bool) {
	w, ok := d.openWhole(blockKey{key, etag, wholeIdx})
	if ok {
		d.wholeHits.Add(1)
	}
	return w, ok
}

func (d *DiskCache) openWhole(k blockKey) (*WholeFile, bool) {
	d.mu.Lock()
	el, ok := d.index[k]
	if !ok {
		d.mu.Unlock()
		return nil, false
	}
	d.lru.MoveToFront(el)
	e := el.Value.(*diskEntry)
	e.whole.users++
	ws := *e.whole
	d.mu.Unlock()
	p := d.path(e.name + ".w")
	f, err := os.Open(p)
	if err == nil {
		err = checkWhole(f, ws.size, ws.crc, !ws.verified)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.corrupt.Add(1)
			d.log.Debug().Str("op", "diskcache.whole").Str("key", k.key).Err(err).Msg("removing damaged whole file")
		}
		d.unpin(e)
		d.drop(el)
		return nil, false
	}
	if !ws.verified {
		d.mu.Lock()
		e.whole.verified = true
		d.mu.Unlock()
	}
	_ = os.Chtimes(p, time.Time{}, d.now()) // recency for the next start-up
	return &WholeFile{f: f, size: ws.size, d: d, e: e}, true
}

// checkWhole checks f's length and, with full, its CRC.
func checkWhole(f *os.File, size int64, crc uint32, full bool) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != size {
		return fmt.Errorf("%d bytes, sidecar says %d", st.Size(), size)
	}
	if !full {
		return nil
	}
	h := crc32.New(diskCRC)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return err
	}
	if h.Sum32() != crc {
		return errors.New("CRC mismatch")
	}
	return nil
}

func (d *DiskCache) unpin(e *diskEntry) {
	d.mu.Lock()
	e.whole.users--
	release := e.whole.users == 0 && e.whole.gone
	d.mu.Unlock()
	if release {
		d.release(e.size)
	}
}

// blockOfWhole reads block k from its object's whole file, if there is one.
func (d *DiskCache) blockOfWhole(k blockKey) ([]byte, bool) {
	if k.idx < 0 {
		return nil, false
	}
	w, ok := d.openWhole(wholeKey(k))
	if !ok {
		return nil, false
	}
	defer w.Close()
	off := k.idx * d.blockSize
	if off >= w.size {
		return nil, false
	}
	b := make([]byte, min(d.blockSize, w.size-off))
	if _, err := w.f.ReadAt(b, off); err != nil {
		return nil, false
	}
	return b, true
}

// wholeMax is the largest whole file the cache takes, in bytes.
func (d *DiskCache) wholeMax() int64 { return d.maxBytes / 4 }

// queueWhole hands p to the writer unless the object already has (or is
// getting) a whole file or does not fit; it never waits. On false the
// caller still owns p.f.
func (d *DiskCache) queueWhole(p *wholePut) bool {
	if p.size <= 0 || p.size > d.wholeMax() || len(p.k.key) > diskMaxKey || len(p.k.etag) > diskMaxETag || p.k.etag == "" {
		return false
	}
	d.mu.Lock()
	_, have := d.index[p.k]
	busy := d.assembling[p.k]
	if !have && !busy {
		d.assembling[p.k] = true
	}
	d.mu.Unlock()
	if have || busy {
		return false
	}
	select {
	case <-d.done:
	default:
		select {
		case d.queue <- diskPut{whole: p}:
			return true
		default:
		}
	}
	d.mu.Lock()
	delete(d.assembling, p.k)
	d.mu.Unlock()
	d.dropped.Add(1)
	return false
}

// adopt takes the staging file f (at its name), which holds exactly the
// object (key, etag) of size bytes, as that object's whole file. On true
// the cache owns f and the file: it closes f and removes the name.
func (d *DiskCache) adopt(f *os.File, key, etag string, size int64) bool {
	return d.queueWhole(&wholePut{k: blockKey{key, etag, wholeIdx}, size: size, f: f, path: f.Name()})
}

// handleWhole writes a whole file on the writer goroutine.
func (d *DiskCache) handleWhole(p *wholePut) {
	defer func() {
		if p.f != nil {
			p.f.Close()
			os.Remove(p.path)
		}
		d.mu.Lock()
		delete(d.assembling, p.k)
		d.mu.Unlock()
	}()
	name := wholeName(p.k)
	metaLen := int64(wholeMetaLen + len(p.k.key) + len(p.k.etag) + 4)
	size := diskSize(p.size) + diskSize(metaLen)
	// Keep the blocks it is made of while making room for it.
	keep := func(e *diskEntry) bool { return e.k.key == p.k.key && e.k.etag == p.k.etag }
	if !d.reserve(size, keep) {
		d.dropped.Add(1)
		return
	}
	crc, err := d.writeWhole(name, p)
	if err != nil {
		d.dropped.Add(1)
		d.log.Debug().Str("op", "diskcache.whole").Str("key", p.k.key).Err(err).Msg("whole file not cached on disk")
		return
	}
	d.mu.Lock()
	e := &diskEntry{k: p.k, name: name, size: size, whole: &wholeState{size: p.size, crc: crc, verified: true}}
	d.index[p.k] = d.lru.PushFront(e)
	// The object's blocks are now read from the whole file.
	var redundant []*list.Element
	for idx := int64(0); idx*d.blockSize < p.size; idx++ {
		if el, ok := d.index[blockKey{p.k.key, p.k.etag, idx}]; ok {
			redundant = append(redundant, el)
		}
	}
	d.mu.Unlock()
	for _, el := range redundant {
		d.drop(el)
	}
	d.wholeAdded.Add(1)
}

// writeWhole writes NAME.w and NAME.m; the caller reserved their bytes,
// which it releases on failure once the temporary files are gone.
func (d *DiskCache) writeWhole(name string, p *wholePut) (crc uint32, err error) {
	data, meta := d.path(name+".w"), d.path(name+".m")
	dir := filepath.Dir(data)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		d.release(diskSize(p.size) + diskSize(int64(wholeMetaLen+len(p.k.key)+len(p.k.etag)+4)))
		return 0, err
	}
	tmpData, tmpMeta := filepath.Join(dir, "tmp-w-"+name), filepath.Join(dir, "tmp-m-"+name)
	defer func() {
		if err == nil {
			return
		}
		left := false
		for _, t := range []string{tmpData, tmpMeta} {
			if rmErr := os.Remove(t); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				left = true
			}
		}
		if !left {
			d.release(diskSize(p.size) + diskSize(int64(wholeMetaLen+len(p.k.key)+len(p.k.etag)+4)))
		}
	}()
	_ = os.Remove(tmpData)
	var f *os.File
	if p.f != nil && os.Link(p.path, tmpData) == nil {
		// The staging file's own inode: no copy.
		if f, err = os.OpenFile(tmpData, os.O_RDWR, 0); err != nil {
			return 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		if st.Size() < p.size {
			return 0, fmt.Errorf("staging file has %d of %d bytes", st.Size(), p.size)
		}
		if st.Size() > p.size {
			if err := f.Truncate(p.size); err != nil {
				return 0, err
			}
		}
		h := crc32.New(diskCRC)
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, p.size)); err != nil {
			return 0, err
		}
		crc = h.Sum32()
	} else {
		if f, err = os.OpenFile(tmpData, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return 0, err
		}
		defer f.Close()
		if crc, err = d.copyWhole(f, p); err != nil {
			return 0, err
		}
	}
	if err = f.Close(); err != nil {
		return 0, err
	}
	if err = os.WriteFile(tmpMeta, appendWholeMeta(nil, p.k, p.size, crc), 0o600); err != nil {
		return 0, err
	}
	if err = os.Chtimes(tmpData, time.Time{}, d.now()); err != nil {
		return 0, err
	}
	if err = os.Rename(tmpData, data); err != nil {
		return 0, err
	}
	if err = os.Rename(tmpMeta, meta); err != nil {
		os.Remove(data)
		return 0, err
	}
	return crc, nil
}

// copyWhole writes p's bytes to f, from its staging file or its blocks,
// and returns their CRC.
func (d *DiskCache) copyWhole(f *os.File, p *wholePut) (uint32, error) {
	h := crc32.New(diskCRC)
	w := io.MultiWriter(f, h)
	if p.f != nil {
		n, err := io.Copy(w, io.NewSectionReader(p.f, 0, p.size))
		if err == nil && n != p.size {
			err = fmt.Errorf("staging file has %d of %d bytes", n, p.size)
		}
		return h.Sum32(), err
	}
	for idx := int64(0); idx*d.blockSize < p.size; idx++ {
		b, ok := p.read(idx)
		if want := min(d.blockSize, p.size-idx*d.blockSize); !ok || int64(len(b)) != want {
			return 0, fmt.Errorf("block %d is no longer cached", idx)
		}
		if _, err := w.Write(b); err != nil {
			return 0, err
		}
	}
	return h.Sum32(), nil
}

// unlinkWhole deletes a whole file taken out of the index (sidecar first),
// then releases its bytes, or has its last user release them.
func (d *DiskCache) unlinkWhole(e *diskEntry) {
	for _, p := range []string{d.path(e.name + ".m"), d.path(e.name + ".w")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Debug().Str("op", "diskcache.evict").Str("key", e.k.key).Err(err).Msg("cannot delete whole file; its bytes stay counted")
			return
		}
	}
	d.mu.Lock()
	inUse := e.whole.users > 0
	if inUse {
		e.whole.gone = true
	}
	d.mu.Unlock()
	if !inUse {
		d.release(e.size)
	}
}

type wholeFound struct {
	e     *diskEntry
	mtime time.Time
}

// loadWhole finds the whole files among a subdirectory's entries at
// start-up: a sidecar that parses, names itself and has its data file of
// the length it says. Anything else of theirs is deleted.
func (d *DiskCache) loadWhole(sub string, ents []os.DirEntry) ([]wholeFound, error) {
	var found []wholeFound
	good := map[string]bool{}
	for _, de := range ents {
		n := de.Name()
		if !isWholeName(n) || !strings.HasSuffix(n, ".m") || !de.Type().IsRegular() {
			continue
		}
		base := n[:64]
		e, mtime, err := d.checkWholeFiles(sub, base)
		if err != nil {
			d.log.Debug().Str("op", "diskcache.load").Str("path", filepath.Join(d.dir, sub, n)).Err(err).Msg("removing malformed whole file")
			continue
		}
		good[base] = true
		found = append(found, wholeFound{e, mtime})
	}
	for _, de := range ents {
		n := de.Name()
		if !isWholeName(n) || good[n[:64]] {
			continue
		}
		if err := os.Remove(filepath.Join(d.dir, sub, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return found, nil
}

func (d *DiskCache) checkWholeFiles(sub, base string) (*diskEntry, time.Time, error) {
	if base[:2] != sub {
		return nil, time.Time{}, errors.New("in the wrong subdirectory")
	}
	b, err := os.ReadFile(d.path(base + ".m"))
	if err != nil {
		return nil, time.Time{}, err
	}
	k, size, crc, err := parseWholeMeta(b)
	if err != nil {
		return nil, time.Time{}, err
	}
	if wholeName(k) != base {
		return nil, time.Time{}, errors.New("sidecar names another object")
	}
	st, err := os.Lstat(d.path(base + ".w"))
	if err != nil {
		return nil, time.Time{}, err
	}
	if !st.Mode().IsRegular() || st.Size() != size {
		return nil, time.Time{}, fmt.Errorf("data file has %d bytes, sidecar says %d", st.Size(), size)
	}
	return &diskEntry{k: k, name: base, size: diskSize(size) + diskSize(int64(len(b))), whole: &wholeState{size: size, crc: crc}}, st.ModTime(), nil
}

func appendWholeMeta(b []byte, k blockKey, size int64, crc uint32) []byte {
	start := len(b)
	b = append(b, wholeMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	b = binary.LittleEndian.AppendUint32(b, crc)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(k.key)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(k.etag)))
	b = append(b, k.key...)
	b = append(b, k.etag...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], diskCRC))
}

func parseWholeMeta(b []byte) (k blockKey, size int64, crc uint32, err error) {
	le := binary.LittleEndian
	if len(b) < wholeMetaLen+4 || !bytes.Equal(b[:4], []byte(wholeMagic)) {
		return k, 0, 0, errors.New("bad sidecar")
	}
	if crc32.Checksum(b[:len(b)-4], diskCRC) != le.Uint32(b[len(b)-4:]) {
		return k, 0, 0, errors.New("sidecar CRC mismatch")
	}
	size, crc = int64(le.Uint64(b[4:])), le.Uint32(b[12:])
	keyLen, etagLen := int(le.Uint32(b[16:])), int(le.Uint32(b[20:]))
	if size < 0 || keyLen > diskMaxKey || etagLen > diskMaxETag || wholeMetaLen+keyLen+etagLen+4 != len(b) {
		return k, 0, 0, errors.New("bad sidecar")
	}
	k.key = string(b[wholeMetaLen : wholeMetaLen+keyLen])
	k.etag = string(b[wholeMetaLen+keyLen : wholeMetaLen+keyLen+etagLen])
	k.idx = wholeIdx
	return k, size, crc, nil
}

// wholeName is the base name of object k's whole file (NAME.w, NAME.m).
func wholeName(k blockKey) string {
	var b []byte
	b = append(b, "ampfs whole file\x00"...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(k.key)))
	b = append(b, k.key...)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(k.etag)))
	b = append(b, k.etag...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func isWholeName(n string) bool {
	if len(n) != 66 || (!strings.HasSuffix(n, ".w") && !strings.HasSuffix(n, ".m")) {
		return false
	}
	_, err := hex.DecodeString(n[:64])
	return err == nil
}

// OpenWhole returns the whole local copy of object (key, etag) of size
// bytes, if the disk cache holds one; else, if every block of it is
// cached, it has one assembled in the background for the next open.
func (c *Cache) OpenWhole(key, etag string, size int64) (*WholeFile, bool) {
	if c.disk == nil || etag == "" {
		return nil, false
	}
	if w, ok := c.disk.OpenWhole(key, etag); ok {
		if w.Size() == size {
			return w, true
		}
		w.Close()
		return nil, false
	}
	c.Assemble(key, etag, size)
	return nil, false
}

// Assemble has the whole file of object (key, etag) of size bytes written
// in the background if it is at least a block, every one of its blocks is
// cached (in memory or on disk) and there is a disk cache; it never waits.
func (c *Cache) Assemble(key, etag string, size int64) {
	d := c.disk
	if d == nil || etag == "" || size <= 0 || size > d.wholeMax() {
		return
	}
	bs := c.opts.BlockSize
	if size < bs {
		// A file of one short block gains little (the kernel keeps its
		// pages between opens) for two more files on disk per file read.
		return
	}
	for idx := int64(0); idx*bs < size; idx++ {
		bk := blockKey{key, etag, idx}
		if !c.blocks.Contains(bk) && !d.Contains(bk) {
			return
		}
	}
	d.queueWhole(&wholePut{k: blockKey{key, etag, wholeIdx}, size: size, read: func(idx int64) ([]byte, bool) {
		bk := blockKey{key, etag, idx}
		if b, ok := c.blocks.Peek(bk); ok {
			return b, true
		}
		return d.Get(bk)
	}})
}

// DropWhole deletes the whole file of object (key, etag), if any: it may
// have been changed (a writable passthrough open's mmap). Handles open on
// it keep reading it; its bytes stay counted until they close.
func (c *Cache) DropWhole(key, etag string) {
	d := c.disk
	if d == nil {
		return
	}
	d.mu.Lock()
	el, ok := d.index[blockKey{key, etag, wholeIdx}]
	d.mu.Unlock()
	if ok {
		d.drop(el)
	}
}

// wholeOf opens the whole file of object (key, etag), if the disk cache
// has one; etag "" is no version, so never.
func (c *Cache) wholeOf(key, etag string) (*WholeFile, bool) {
	if c.disk == nil || etag == "" {
		return nil, false
	}
	return c.disk.OpenWhole(key, etag)
}
