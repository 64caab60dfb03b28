package fs

import (
	"strings"

	"github.com/ampfs/ampfs/fs/access"
)

// Kind says what a path in the mount is.
type Kind int

const (
	// Absent: nothing can be at this path (outside every tree, or a name
	// that is not a name).
	Absent Kind = iota
	// Virtual: a directory built locally (the Amplify top level); it has
	// no key, no listing request is ever sent for it.
	Virtual
	// Mapped: a directory that exists by the layout itself (the root of a
	// tree such as public/, or the user's own protected/<id>/) and is backed
	// by keys.
	Mapped
	// Real: backed by object keys; exists when the server says so.
	Real
)

// Layout maps paths in the mount ("" is the root, "a/b" below it) to object
// keys and says what the user may do there. Implementations are immutable
// and safe for concurrent use.
type Layout interface {
	// Classify says what path p is.
	Classify(p string) Kind
	// Key is the object key of the file at Real path p; the directory at p
	// lists the prefix Key(p)+"/" (or the bucket root for "" in raw).
	Key(p string) string
	// DirKey is the key prefix listed for the directory at p ("" for the
	// whole bucket).
	DirKey(p string) string
	// Children are the entries of the Virtual directory at p, and the
	// entries always present in a Mapped or Real directory (the user's own
	// identity in protected/), all directories.
	Children(p string) []string
	// Rights is what the user may do with the object key.
	Rights(key string) access.Rights
}

// rawLayout mounts a bucket, or a prefix of it, as it is, with all rights;
// the server alone decides.
type rawLayout struct {
	prefix string // "" or ending in "/"
}

// RawLayout returns the layout of --layout raw.
func RawLayout(prefix string) Layout {
	prefix = strings.TrimLeft(prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return rawLayout{prefix: prefix}
}

func (l rawLayout) Classify(p string) Kind {
	if p == "" {
		return Mapped
	}
	if !validPath(p) {
		return Absent
	}
	return Real
}

func (l rawLayout) Key(p string) string { return l.prefix + p }

func (l rawLayout) DirKey(p string) string {
	if p == "" {
		return l.prefix
	}
	return l.prefix + p + "/"
}

func (l rawLayout) Children(string) []string    { return nil }
func (l rawLayout) Rights(string) access.Rights { return access.All }

// validPath reports whether every segment of p is a valid name.
func validPath(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if !validName(s) {
			return false
		}
	}
	return true
}

// ListablePrefix returns a key prefix the user may list, searching the
// layout's own directories from the top, for a start-up check that the
// rules allow (Amplify's policies deny listing the bucket root).
func ListablePrefix(l Layout) (string, bool) {
	queue := []string{""}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if k := l.Classify(p); k == Mapped || k == Real {
			if l.Rights(l.DirKey(p) + "\x00").Has(access.List) {
				return l.DirKey(p), true
			}
		}
		for _, c := range l.Children(p) {
			if p != "" {
				c = p + "/" + c
			}
			queue = append(queue, c)
		}
	}
	return "", false
}
