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
	// Inline says Data holds the committed bytes (a small file): the
	// staging file was not synced, and recovery writes it from Data.
	Inline bool   `json:"inline,omitempty"`
	Data   []byte `json:"data,omitempty"`
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
//
// A small file's bytes (up to inlineMax) go into its record, so its
// commit is that one sync: the staging file is not synced. When the log
// is opened (at the next mount), each such record's staging file is
// written from the record and synced; when it is rewritten, the staging
// files of the live inline records are synced first and their records
// written without the bytes. The log's records in memory never hold the
// bytes.
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
	// inlineMax is the largest file whose bytes go into its record.
	inlineMax = 16 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal is the open log. Its mutex is a leaf: taken alone or under
// Cache.wmu, never held across a network call.
type journal struct {
	mu sync.Mutex
	// f is the log, open for appending; nil until first used. GUARDED_BY(mu)
	f *os.File
	// live holds each key's last record (its bytes left out), for
	// rewriting the log; dead counts the frames superseded since it was
	// last rewritten. GUARDED_BY(mu)
	live map[string]record
	dead int
	// syncing counts fdatasyncs of f in flight, which run without mu so
	// that appends (an upload worker's tombstone, under Cache.wmu) never
	// wait for a sync; a rewrite closes the old f once they end.
	// GUARDED_BY(mu)
	syncing int
	synced  *sync.Cond // L is &mu; broadcast when syncing drops to 0
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
	j.f, j.live, j.dead = f, map[string]record{}, frames-len(recs)
	restored := false
	for _, r := range recs {
		if r.Inline {
			// The staging file may be missing or short (not synced):
			// its bytes are in the record.
			if err := c.restoreStaging(r); err != nil {
				c.opts.Logger.Error().Str("key", r.Key).Err(err).Msg("writing a journaled file's staging file")
				continue
			}
			restored = true
		}
		r.Data = nil
		j.live[r.Key] = r
	}
	if restored {
		return durable.SyncDir(c.opts.StagingDir)
	}
	return nil
}

// restoreStaging writes the staging file of inline record r from it.
func (c *Cache) restoreStaging(r record) error {
	f, err := os.OpenFile(filepath.Join(c.opts.StagingDir, filepath.Base(r.Staging)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(r.Data)
	if err == nil {
		err = durable.Datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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
	if err := c.appendLocked(r, fr); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	// The sync runs unlocked: others append meanwhile, and a sync of
	// theirs also covers this frame. A rewrite meanwhile copies it to the
	// new log (it is live) and waits for this sync before closing f.
	f := j.f
	j.syncing++
	j.mu.Unlock()
	err = durable.Datasync(f)
	j.mu.Lock()
	if j.syncing--; j.syncing == 0 && j.synced != nil {
		j.synced.Broadcast()
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// appendRecord appends r without a sync of its own (CommitMeta: its
// bytes are those of an earlier, synced record of the same staging file).
func (c *Cache) appendRecord(r record) error {
	fr, err := frame(r)
	if err != nil {
		return err
	}
	j := &c.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := c.appendLocked(r, fr); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// removeRecord ends key's record (not synced: see above).
func (c *Cache) removeRecord(key string) {
	done := record{Key: key, Done: true}
	fr, err := frame(done)
	if err == nil {
		j := &c.journal
		j.mu.Lock()
		if _, ok := j.live[key]; ok || j.f == nil {
			err = c.appendLocked(done, fr)
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

// appendLocked appends r's frame fr (a tombstone when r ends the
// record) and rewrites the log when it is mostly dead. The caller holds
// j.mu.
func (c *Cache) appendLocked(r record, fr []byte) error {
	j := &c.journal
	if err := c.openLog(); err != nil {
		return err
	}
	if _, err := j.f.Write(fr); err != nil {
		return err
	}
	if _, ok := j.live[r.Key]; ok {
		j.dead++
	}
	if r.Done {
		delete(j.live, r.Key)
		j.dead++
	} else {
		r.Data = nil
		j.live[r.Key] = r
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
	synced := false
	for key, r := range j.live {
		if r.Inline {
			// Its bytes stay behind in the old log: its staging file
			// holds them from here on.
			f, err := os.Open(filepath.Join(c.opts.StagingDir, filepath.Base(r.Staging)))
			if err != nil {
				return err
			}
			err = durable.Datasync(f)
			f.Close()
			if err != nil {
				return err
			}
			r.Inline, synced = false, true
			j.live[key] = r
		}
		fr, err := frame(r)
		if err != nil {
			return err
		}
		buf = append(buf, fr...)
	}
	if synced {
		if err := durable.SyncDir(c.opts.StagingDir); err != nil {
			return err
		}
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
	old := j.f
	j.f, j.dead = f, 0
	c.waitSyncsLocked()
	old.Close()
	return nil
}

// waitSyncsLocked waits for the syncs in flight. The caller holds j.mu.
func (c *Cache) waitSyncsLocked() {
	j := &c.journal
	if j.synced == nil {
		j.synced = sync.NewCond(&j.mu)
	}
	for j.syncing > 0 {
		j.synced.Wait()
	}
}

// closeJournal closes the log (Cache.Close).
func (c *Cache) closeJournal() {
	j := &c.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	c.waitSyncsLocked()
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
	for key, r := range j.live {
		out = append(out, r)
		seen[key] = true
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
