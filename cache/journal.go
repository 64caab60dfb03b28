package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ampfs/ampfs/internal/durable"
)

// record is one journal entry: a committed file whose upload has not
// completed. It names the staging file that holds the data, so a restart
// (after kill -9 or a reboot) finds both and uploads again.
type record struct {
	Key         string            `json:"key"`
	Staging     string            `json:"staging"` // file name in Options.StagingDir
	Size        int64             `json:"size"`    // bytes committed
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// UploadID is a multipart upload in progress for this record; after a
	// crash it is aborted (its parts would otherwise be billed forever).
	UploadID  string    `json:"upload_id,omitempty"`
	Committed time.Time `json:"committed"`
	// Done marks the end of Key's record (its upload finished or was
	// canceled): a tombstone in the log.
	Done bool `json:"done,omitempty"`
}

// The journal is one append-only log file, journal/log: each record is a
// frame (length, CRC-32C, JSON), and a key's last frame is its record. A
// commit appends its frame and fdatasyncs the log: one sync, and no file
// created, renamed or removed per closed file. (A file per record, written
// to a temporary file, synced, renamed and the directory synced, cost a
// close(2) about three syncs and two file creations: untar of the Go tree
// spent a third of ampfs's CPU there, in openat and fdatasync on ext4.)
// A crash leaves the last frame whole or torn; a torn or damaged frame
// ends the log at recovery, so a key keeps its old record or gets the new
// one. Tombstones (an upload ended) are appended without a sync: one lost
// in a crash makes the next mount upload that file again, as a record
// file whose removal was not synced did. When the log holds mostly dead
// frames it is rewritten with the live ones (a temporary file, synced,
// renamed over it). Records of older versions, one file each
// (HASH.json), are still read, and moved into the log by Recover.
const (
	journalLog = "log"
	// frameHeader is a frame's length and CRC-32C, little-endian.
	frameHeader = 8
	// maxFrame bounds a frame's payload (a record with 2 KiB of xattrs
	// and other metadata is far below it).
	maxFrame = 1 << 20
	// compactDead is how many dead frames the log may hold before it is
	// rewritten (and only when they outnumber the live ones twice).
	compactDead = 4096
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal is the open log. Its mutex is a leaf: taken alone or under
// Cache.wmu, never held across a network call.
type journal struct {
	mu sync.Mutex
	// f is the log, open for appending; nil until first used. GUARDED_BY(mu)
	f *os.File
	// live holds each key's last frame, for rewriting the log; dead
	// counts the frames superseded since it was last rewritten.
	// GUARDED_BY(mu)
	live map[string][]byte
	dead int
}

func (c *Cache) journalDir() string { return filepath.Join(c.opts.JournalDir) }

func (c *Cache) logPath() string { return filepath.Join(c.journalDir(), journalLog) }

// recordPath is where an older version kept key's record; the stream
// journal still names its files after it.
func (c *Cache) recordPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.journalDir(), hex.EncodeToString(sum[:16])+".json")
}

func frame(r record) ([]byte, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(data) > maxFrame {
		return nil, fmt.Errorf("journal record of %d bytes", len(data))
	}
	out := make([]byte, frameHeader, frameHeader+len(data))
	binary.LittleEndian.PutUint32(out, uint32(len(data)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(data, crcTable))
	return append(out, data...), nil
}

// openLog opens the log for appending, replaying it into j.live. The
// caller holds j.mu.
func (c *Cache) openLog() error {
	j := &c.journal
	if j.f != nil {
		return nil
	}
	recs, frames, end, err := readLog(c.logPath())
	if err != nil {
		return err
	}
	f, err := os.OpenFile(c.logPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// A torn frame at the end (a crash while appending) goes, so the next
	// frame is not appended after it.
	if err := f.Truncate(end); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	j.f, j.live, j.dead = f, map[string][]byte{}, frames-len(recs)
	for _, r := range recs {
		fr, err := frame(r)
		if err != nil {
			continue
		}
		j.live[r.Key] = fr
	}
	return nil
}

// readLog replays the log at path: the live records by key, how many
// frames it holds, and where its last whole frame ends.
func readLog(path string) (map[string]record, int, int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]record{}, 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	recs := map[string]record{}
	frames, off := 0, 0
	for len(data)-off >= frameHeader {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n > maxFrame || len(data)-off-frameHeader < n {
			break
		}
		payload := data[off+frameHeader : off+frameHeader+n]
		var r record
		if crc32.Checksum(payload, crcTable) != sum || json.Unmarshal(payload, &r) != nil || r.Key == "" {
			break
		}
		frames++
		off += frameHeader + n
		if r.Done {
			delete(recs, r.Key)
		} else if r.Staging != "" {
			recs[r.Key] = r
		}
	}
	return recs, frames, int64(off), nil
}

// writeRecord makes r durable: its frame is appended and the log synced.
func (c *Cache) writeRecord(r record) error {
	fr, err := frame(r)
	if err != nil {
		return err
	}
	j := &c.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := c.appendLocked(r.Key, fr); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := durable.Datasync(j.f); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// removeRecord ends key's record (not synced: see above).
func (c *Cache) removeRecord(key string) {
	fr, err := frame(record{Key: key, Done: true})
	if err == nil {
		j := &c.journal
		j.mu.Lock()
		if _, ok := j.live[key]; ok || j.f == nil {
			err = c.appendLocked(key, fr)
		}
		j.mu.Unlock()
	}
	if err != nil {
		c.opts.Logger.Warn().Str("key", key).Err(err).Msg("ending a journal record")
	}
	// A record file of an older version.
	if err := os.Remove(c.recordPath(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.opts.Logger.Warn().Str("key", key).Err(err).Msg("removing journal record")
	}
}

// appendLocked appends key's frame fr (a tombstone when it ends the
// record) and rewrites the log when it is mostly dead. The caller holds
// j.mu.
func (c *Cache) appendLocked(key string, fr []byte) error {
	j := &c.journal
	if err := c.openLog(); err != nil {
		return err
	}
	if _, err := j.f.Write(fr); err != nil {
		return err
	}
	var r record
	json.Unmarshal(fr[frameHeader:], &r)
	if _, ok := j.live[key]; ok {
		j.dead++
	}
	if r.Done {
		delete(j.live, key)
		j.dead++
	} else {
		j.live[key] = fr
	}
	if j.dead > compactDead && j.dead > 2*len(j.live) {
		return c.rewriteLocked()
	}
	return nil
}

// rewriteLocked replaces the log with its live frames. The caller holds
// j.mu.
func (c *Cache) rewriteLocked() error {
	j := &c.journal
	var buf []byte
	for _, fr := range j.live {
		buf = append(buf, fr...)
	}
	if err := durable.WriteFile(c.logPath(), buf); err != nil {
		return err
	}
	f, err := os.OpenFile(c.logPath(), os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return err
	}
	j.f.Close()
	j.f, j.dead = f, 0
	return nil
}

// closeJournal closes the log (Cache.Close).
func (c *Cache) closeJournal() {
	j := &c.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

// readJournal returns the pending records: the log's, and record files
// of an older version (which a record in the log overrides); damaged
// record files are dropped.
func (c *Cache) readJournal() ([]record, error) {
	j := &c.journal
	j.mu.Lock()
	err := c.openLog()
	var out []record
	seen := map[string]bool{}
	for key, fr := range j.live {
		var r record
		if json.Unmarshal(fr[frameHeader:], &r) == nil {
			out = append(out, r)
			seen[key] = true
		}
	}
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(c.journalDir())
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == journalLog {
			continue // streams/, the log
		}
		p := filepath.Join(c.journalDir(), e.Name())
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			os.Remove(p) // a temporary file of an interrupted write
			continue
		}
		data, err := os.ReadFile(p)
		var r record
		if err == nil {
			err = json.Unmarshal(data, &r)
		}
		if err != nil || r.Key == "" || r.Staging == "" || p != c.recordPath(r.Key) {
			c.opts.Logger.Warn().Str("path", p).Err(err).Msg("ignoring a damaged journal record")
			os.Remove(p)
			continue
		}
		if !seen[r.Key] {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out, nil
}
