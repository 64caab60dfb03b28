package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/ampfs/ampfs/internal/durable"
	"github.com/ampfs/ampfs/store"
)

// Write-back: a file's data is committed (fsynced to its staging file and
// journaled) when it is closed, and uploaded by a pool of workers under
// the Cache's context. A failed upload is retried with backoff and stays
// visible in Status until it succeeds; nothing is dropped silently.

// State is where a pending upload is.
type State string

// The states of a pending upload.
const (
	Queued    State = "queued"
	Uploading State = "uploading"
	Failed    State = "failed" // retried after a backoff
)

// UploadStatus describes one pending upload.
type UploadStatus struct {
	Key      string
	State    State
	Size     int64 // bytes to upload
	Attempts int   // failed attempts so far
	Err      string
	Since    time.Time // committed
}

// pending is a key with committed data not yet on the server.
type pending struct {
	key      string
	s        *Staged // holds a reference
	opts     store.PutOptions
	onDone   func(store.ObjectInfo)
	state    State
	commitAt time.Time
	size     int64 // bytes committed

	// want is the Staged generation last committed; done the last one
	// uploaded; failed the last one whose upload failed.
	want, done, failed uint64
	err                error
	attempts           int
	again              bool // committed again while uploading
	canceled           bool // unlinked: drop, and delete what an upload in flight stores
	superseded         bool // replaced (Supersede): drop, and keep what an upload in flight stores
	finished           bool // the worker is done with it after it was dropped
	retry              *time.Timer
	settling           *time.Timer // waiting Options.Settle before it is queued
	// deferred: held back while the file is still being written (see
	// writerDeferCheck); deferTimer looks again. forced: someone waits for it
	// (fsync, sync, unmount), so it is never held back.
	deferred   bool
	deferTimer *time.Timer
	forced     bool
	seen       uint64 // the staged generation when last looked at
	looked     bool   // held back at least once since the last commit
	// changedRetries counts uploads in a row that failed while the file
	// changed under them; past maxChangedRetries a failure is reported.
	changedRetries int
}

// maxChangedRetries bounds the immediate re-uploads of a file that keeps
// changing while it uploads; then the usual backoff applies.
const maxChangedRetries = 8

// A commit of a file that is still being written (dd closes a descriptor
// it dup'ed right after opening; an editor fsyncs nothing and writes on)
// is not uploaded while the writes go on: the upload would send a
// snapshot about to be stale, and would end the file's stream (its parts
// already sent), so the final close uploads it all again. It is held back,
// looked at again every writerDeferCheck, until the file stops changing
// (no write since the last look), it is committed again (the final
// close), someone waits for it (fsync, sync, unmount), or writerDeferMax
// after the commit. The data is journaled all along: a crash meanwhile
// uploads the staging file at the next mount.
const (
	writerDeferCheck = time.Second
	writerDeferMax   = 5 * time.Minute
)

// undeferLocked queues p if it was held back; the caller holds wmu.
func (c *Cache) undeferLocked(p *pending) {
	if !p.deferred {
		return
	}
	p.deferred = false
	if p.deferTimer != nil {
		p.deferTimer.Stop()
		p.deferTimer = nil
	}
	if !p.canceled && c.pend[p.key] == p {
		c.enqueue(p)
	}
}

// changed wakes everyone waiting on upload progress; the caller holds wmu.
func (c *Cache) changed() {
	close(c.wchange)
	c.wchange = make(chan struct{})
}

// Commit makes s's current contents durable under key and queues their
// upload; it returns the generation committed, for Wait. It blocks while
// the committed-but-not-uploaded bytes exceed Options.MaxDirty.
func (c *Cache) Commit(ctx context.Context, key string, s *Staged, opts store.PutOptions, onDone func(store.ObjectInfo)) (uint64, error) {
	return c.commit(ctx, key, s, opts, onDone, true)
}

// CommitMeta commits s again with new metadata (opts) when its bytes
// have not changed since their last Commit (a chmod or utimes after
// close: tar sets each file's times): the record is journaled but not
// synced on its own, so the next sync (any commit's) makes it durable. A
// crash before that loses the metadata change, never the data, which its
// earlier commit made durable; fsync (Wait) uploads it.
func (c *Cache) CommitMeta(ctx context.Context, key string, s *Staged, opts store.PutOptions, onDone func(store.ObjectInfo)) (uint64, error) {
	return c.commit(ctx, key, s, opts, onDone, false)
}

func (c *Cache) commit(ctx context.Context, key string, s *Staged, opts store.PutOptions, onDone func(store.ObjectInfo), sync bool) (uint64, error) {
	if err := c.waitDirtyRoom(ctx); err != nil {
		return 0, err
	}
	gen, size := s.snapshot()
	rec := record{Key: key, Staging: s.name(), Size: size, ContentType: opts.ContentType, Metadata: opts.Metadata, Committed: time.Now()}
	if size <= inlineMax {
		// A small file's bytes go into its record: one sync (journal.go).
		rec.Inline, rec.Data = true, make([]byte, size)
		if n, err := s.f.ReadAt(rec.Data, 0); err != nil && !(errors.Is(err, io.EOF) && int64(n) <= size) {
			return 0, fmt.Errorf("staging file: %w", err)
		}
	} else if sync {
		if err := durable.Datasync(s.f); err != nil {
			return 0, fmt.Errorf("staging file: %w", err)
		}
	}
	if sync {
		if err := c.writeRecord(rec); err != nil {
			return 0, err
		}
	} else if err := c.appendRecord(rec); err != nil {
		// (The bytes are those of the last commit, durable with it.)
		return 0, err
	}
	s.setCommitted(gen)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p := c.pend[key]
	if p == nil {
		p = &pending{key: key, s: s.Ref(), commitAt: rec.Committed}
		c.pend[key] = p
	} else if p.s != s {
		old := p.s
		p.s = s.Ref()
		defer old.Close()
	}
	p.opts, p.onDone, p.want, p.size, p.commitAt, p.seen, p.looked = opts, onDone, gen, size, rec.Committed, gen, false
	if p.deferred {
		p.deferred = false
		if p.deferTimer != nil {
			p.deferTimer.Stop()
			p.deferTimer = nil
		}
		p.state = "" // not queued: settle it as a new commit
	}
	switch {
	case p.state == Uploading:
		p.again = true
	case p.state == Queued: // in the queue, or settling
	default:
		if p.retry != nil {
			p.retry.Stop()
			p.retry = nil
		}
		c.settleThenEnqueue(p)
	}
	c.changed()
	return gen, nil
}

// settleThenEnqueue queues p after Options.Settle: the chmod, utimes and
// renames that follow a close (tar, cp -p, editors' save-and-rename) fold
// into the same upload instead of costing a copy or a second upload each.
// fsync (Wait) and Drain skip the wait. The caller holds wmu.
func (c *Cache) settleThenEnqueue(p *pending) {
	if c.opts.Settle <= 0 {
		c.enqueue(p)
		return
	}
	p.state = Queued // to Status and sync; the workers see it once settled
	p.settling = time.AfterFunc(c.opts.Settle, func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.settledLocked(p)
	})
}

// settledLocked ends p's settling and queues it; the caller holds wmu.
func (c *Cache) settledLocked(p *pending) {
	if p.settling == nil {
		return
	}
	p.settling.Stop()
	p.settling = nil
	if !p.canceled && c.pend[p.key] == p {
		c.enqueue(p)
	}
}

// waitDirtyRoom is the back-pressure of Options.MaxDirty.
func (c *Cache) waitDirtyRoom(ctx context.Context) error {
	for {
		c.wmu.Lock()
		var dirty int64
		for _, p := range c.pend {
			dirty += p.s.Size()
		}
		ch := c.wchange
		c.wmu.Unlock()
		if dirty <= c.opts.MaxDirty {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// enqueue hands p to the workers; the caller holds wmu.
func (c *Cache) enqueue(p *pending) {
	p.state = Queued
	c.queue = append(c.queue, p)
	c.changed()
}

// Wait returns when generation gen of key is on the server, or with the
// error of the upload attempt that tried it (fsync's contract), or when ctx
// ends.
func (c *Cache) Wait(ctx context.Context, key string, gen uint64) error {
	c.wmu.Lock()
	if p := c.pend[key]; p != nil {
		p.forced = true
		c.settledLocked(p) // fsync does not wait for others to settle
		c.undeferLocked(p)
	}
	c.wmu.Unlock()
	for {
		c.wmu.Lock()
		p := c.pend[key]
		var err error
		done := p == nil || p.done >= gen || p.canceled
		if !done && p.failed >= gen && p.err != nil {
			err = p.err
		}
		ch := c.wchange
		c.wmu.Unlock()
		if done || err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Committed returns the generation last committed for key, 0 when nothing
// is pending.
func (c *Cache) Committed(key string) uint64 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if p := c.pend[key]; p != nil {
		return p.want
	}
	return 0
}

// Cancel drops key's pending upload (the file was deleted).
func (c *Cache) Cancel(key string) {
	c.wmu.Lock()
	p := c.pend[key]
	if p == nil {
		c.wmu.Unlock()
		return
	}
	c.dropLocked(p)
	c.wmu.Unlock()
}

// Supersede drops key's pending upload because the object is about to be
// replaced on the server (a file renamed over this one): unlike Cancel,
// what an upload in flight stores is not deleted once it ends, which
// would delete the replacement. Supersede waits for that upload to end,
// so the replacement is written after it and stays.
func (c *Cache) Supersede(ctx context.Context, key string) error {
	c.wmu.Lock()
	p := c.pend[key]
	if p == nil {
		c.wmu.Unlock()
		return nil
	}
	inFlight := p.state == Uploading
	p.superseded = true
	c.dropLocked(p)
	for inFlight && !p.finished {
		ch := c.wchange
		c.wmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.wmu.Lock()
	}
	c.wmu.Unlock()
	return nil
}

// dropLocked forgets p; an upload in flight finishes and is deleted.
func (c *Cache) dropLocked(p *pending) {
	p.canceled = true
	if p.retry != nil {
		p.retry.Stop()
	}
	if p.settling != nil {
		p.settling.Stop()
		p.settling = nil
	}
	if p.deferTimer != nil {
		p.deferTimer.Stop()
		p.deferTimer = nil
	}
	p.deferred = false
	delete(c.pend, p.key)
	for i, q := range c.queue {
		if q == p {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			break
		}
	}
	c.removeRecord(p.key)
	if p.state != Uploading {
		p.s.Close()
	}
	c.changed()
}

// Pending returns the staged data of key's pending upload, with a
// reference the caller closes, so a file whose upload has not finished is
// seen (and read) as it was written, also after a restart.
func (c *Cache) Pending(key string) (*Staged, bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if p := c.pend[key]; p != nil {
		return p.s.Ref(), true
	}
	return nil, false
}

// PendingUpload describes key's pending upload: what the object will be
// once it is on the server.
type PendingUpload struct {
	Size      int64
	Opts      store.PutOptions // content type and metadata it goes up with
	Committed time.Time
}

// PendingInfo returns key's pending upload, if there is one.
func (c *Cache) PendingInfo(key string) (PendingUpload, bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p := c.pend[key]
	if p == nil {
		return PendingUpload{}, false
	}
	return PendingUpload{Size: p.s.Size(), Opts: p.opts, Committed: p.commitAt}, true
}

// PendingNames returns the names directly below prefix (which ends in "/"
// or is "") that have pending uploads: files not on the server yet.
func (c *Cache) PendingNames(prefix string) []string {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var out []string
	for k := range c.pend {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" && !strings.Contains(rest, "/") {
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out
}

// Status lists the pending uploads.
func (c *Cache) Status() []UploadStatus {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	out := make([]UploadStatus, 0, len(c.pend))
	for _, p := range c.pend {
		st := UploadStatus{Key: p.key, State: p.state, Size: p.s.Size(), Attempts: p.attempts, Since: p.commitAt}
		if p.err != nil {
			st.Err = p.err.Error()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Drain waits until nothing is pending, or ctx ends; then it reports how
// many uploads are left (they stay journaled for the next mount).
func (c *Cache) Drain(ctx context.Context) error {
	c.wmu.Lock()
	for _, p := range c.pend {
		p.forced = true
		c.settledLocked(p)
		c.undeferLocked(p)
	}
	c.wmu.Unlock()
	for {
		c.wmu.Lock()
		n := len(c.pend)
		ch := c.wchange
		c.wmu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%d upload(s) still pending; they are journaled in %s and resume at the next mount", n, c.opts.JournalDir)
		}
	}
}

// worker uploads queued files until the Cache's context ends.
func (c *Cache) worker() {
	defer c.workers.Done()
	ctx := c.opts.Context
	for {
		c.wmu.Lock()
		for len(c.queue) == 0 {
			if ctx.Err() != nil {
				c.wmu.Unlock()
				return
			}
			ch := c.wchange
			c.wmu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			}
			c.wmu.Lock()
		}
		p := c.queue[0]
		c.queue = c.queue[1:]
		// Still being written: changed since the last look, or (after the
		// first look) its stream still has parts in flight, which is a
		// writer held back by the link rather than an idle file.
		if g := p.s.Gen(); !p.forced && (g != p.seen || p.looked && p.s.streamBusy()) && time.Since(p.commitAt) < writerDeferMax {
			// Hold it back (see writerDeferCheck).
			p.seen, p.deferred, p.looked = g, true, true
			p.deferTimer = time.AfterFunc(writerDeferCheck, func() {
				c.wmu.Lock()
				defer c.wmu.Unlock()
				p.deferTimer = nil
				c.undeferLocked(p)
			})
			c.changed()
			c.wmu.Unlock()
			continue
		}
		p.state, p.again = Uploading, false
		s, key, opts := p.s, p.key, p.opts
		startGen := s.Gen()
		c.changed()
		c.wmu.Unlock()

		info, err := c.uploadStaged(ctx, key, s, opts, func(id string) { c.noteUploadID(key, s, id) })

		c.wmu.Lock()
		notified := false
		if err == nil && !p.canceled && !p.again && p.s == s && p.onDone != nil {
			// Done. onDone runs before Wait sees it (p.done is not
			// raised yet): whoever waited for the upload (fsync, close
			// with --sync-on-close) finds the file already knowing its
			// new version. It runs without the lock; a commit meanwhile
			// sets p.again, as during the upload.
			onDone := p.onDone
			c.wmu.Unlock()
			onDone(info)
			c.wmu.Lock()
			notified = true
		}
		gen := p.want
		var release *Staged
		switch {
		case p.canceled:
			// Canceled while uploading: the file was deleted, and what
			// the upload stored goes too. (Canceled after the upload,
			// while onDone ran, is as canceled after its end: whoever
			// canceled deletes or replaces the object itself.)
			if err == nil && !notified && !p.superseded {
				c.workers.Add(1)
				go c.deleteAfterCancel(key) // the file was deleted while it uploaded
			}
			p.finished = true
			s.Close()
		case err == nil:
			p.done, p.err, p.attempts, p.changedRetries = max(p.done, s.cleanGenOf()), nil, 0, 0
			// Committed again while it uploaded: once more. Writes not
			// committed yet (a file still being written) wait for their
			// close or fsync, which commits them.
			if p.again || p.s != s {
				c.enqueue(p)
			} else {
				delete(c.pend, key)
				c.removeRecord(key)
				release = s
			}
		case ctx.Err() != nil:
			// Shutting down: the record stays for the next mount.
			p.state = Queued
		case s.Gen() != startGen && p.changedRetries < maxChangedRetries:
			// The file was written (another descriptor) while the upload
			// read it, so the server refused a body that no longer matched
			// its checksum, or the read saw a mix: not a failure of the
			// data, nor one to report to fsync. Upload the new state now.
			p.changedRetries++
			c.opts.Logger.Debug().Str("op", "upload").Str("key", key).Err(err).Msg("the file changed during its upload; uploading again")
			c.enqueue(p)
		default:
			p.err, p.failed, p.attempts, p.state = err, gen, p.attempts+1, Failed
			delay := min(time.Second<<min(p.attempts-1, 5), 30*time.Second)
			c.opts.Logger.Warn().Str("op", "upload").Str("key", key).Int("attempt", p.attempts).Dur("retry_in", delay).Err(err).Msg("upload failed; will retry")
			p.retry = time.AfterFunc(delay, func() {
				c.wmu.Lock()
				defer c.wmu.Unlock()
				if !p.canceled && p.state == Failed && c.pend[key] == p {
					p.retry = nil
					c.enqueue(p)
				}
			})
		}
		c.changed()
		c.wmu.Unlock()
		if release != nil {
			release.Close() // the pending upload's reference
		}
	}
}

func (c *Cache) deleteAfterCancel(key string) {
	defer c.workers.Done()
	if err := c.opts.Bucket.Delete(c.opts.Context, key); err != nil {
		c.opts.Logger.Warn().Str("op", "delete").Str("key", key).Err(err).Msg("a deleted file's upload finished; removing it failed")
	}
}

// Recover queues the uploads a previous run journaled but did not finish
// (after kill -9, a crash or an unreachable server) and removes staging
// files nothing refers to. Call it once, before serving.
func (c *Cache) Recover() (int, error) {
	c.abortStreams()
	recs, err := c.readJournal()
	if err != nil {
		return 0, err
	}
	used := map[string]bool{}
	n := 0
	for _, r := range recs {
		if r.UploadID != "" {
			actx, cancel := context.WithTimeout(c.opts.Context, abortTimeout)
			if err := c.opts.Bucket.AbortMultipartUpload(actx, r.Key, r.UploadID); err != nil && !errors.Is(err, store.ErrNoSuchUpload) {
				c.opts.Logger.Warn().Str("key", r.Key).Str("upload_id", r.UploadID).Err(err).Msg("aborting an abandoned multipart upload")
			}
			cancel()
		}
		s, err := c.openStaged(r.Staging, r.Size)
		if err != nil {
			c.opts.Logger.Error().Str("key", r.Key).Err(err).Msg("a journaled upload lost its staging file; it cannot be resumed")
			c.removeRecord(r.Key)
			continue
		}
		used[s.name()] = true
		if _, err := os.Stat(c.recordPath(r.Key)); err == nil {
			// A record file of an older version moves into the log.
			if err := c.writeRecord(r); err == nil {
				os.Remove(c.recordPath(r.Key))
			}
		}
		c.wmu.Lock()
		p := &pending{key: r.Key, s: s, opts: store.PutOptions{ContentType: r.ContentType, Metadata: r.Metadata}, want: 1, commitAt: r.Committed, size: r.Size}
		c.pend[r.Key] = p
		c.enqueue(p)
		c.wmu.Unlock()
		n++
	}
	ents, err := os.ReadDir(c.opts.StagingDir)
	if err != nil {
		return n, err
	}
	for _, e := range ents {
		if !used[e.Name()] {
			os.Remove(path.Join(c.opts.StagingDir, e.Name()))
		}
	}
	return n, nil
}

// noteUploadID adds a multipart upload's id to key's journal record, so a
// crash does not leave its parts behind: the next mount aborts it.
func (c *Cache) noteUploadID(key string, s *Staged, id string) {
	c.wmu.Lock()
	p := c.pend[key]
	ok := p != nil && p.s == s && !p.canceled
	var rec record
	if ok {
		rec = record{Key: key, Staging: s.name(), Size: p.size, ContentType: p.opts.ContentType, Metadata: p.opts.Metadata, UploadID: id, Committed: p.commitAt}
	}
	c.wmu.Unlock()
	if !ok {
		return
	}
	if err := c.writeRecord(rec); err != nil {
		c.opts.Logger.Warn().Str("key", key).Str("upload_id", id).Err(err).Msg("could not journal a multipart upload id")
	}
}
