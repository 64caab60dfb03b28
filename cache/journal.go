package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ampfs/ampfs/internal/durable"
)

// record is one journal entry: a committed file whose upload has not
// completed. It names the staging file that holds the data, so a restart
// (after kill -9 or a reboot) finds both and uploads again.
//
// Each record is its own file, replaced atomically (write a temporary
// file, fsync, rename, fsync the directory): a crash leaves the old record
// or the new one, never a torn one. A leftover temporary file, or a record
// that does not parse, is ignored and removed at recovery.
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
}

func (c *Cache) journalDir() string { return filepath.Join(c.opts.JournalDir) }

func (c *Cache) recordPath(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(c.journalDir(), hex.EncodeToString(sum[:16])+".json")
}

// writeRecord makes r durable.
func (c *Cache) writeRecord(r record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := durable.WriteFile(c.recordPath(r.Key), data); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (c *Cache) removeRecord(key string) {
	if err := os.Remove(c.recordPath(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.opts.Logger.Warn().Str("key", key).Err(err).Msg("removing journal record")
	}
}

// readJournal returns the records on disk, dropping unreadable ones.
func (c *Cache) readJournal() ([]record, error) {
	ents, err := os.ReadDir(c.journalDir())
	if err != nil {
		return nil, err
	}
	var out []record
	for _, e := range ents {
		if e.IsDir() {
			continue // streams/
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
		out = append(out, r)
	}
	return out, nil
}
