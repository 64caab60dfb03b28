package fs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ampfs/ampfs/fs/access"
)

// amplifyLayout shows an Amplify Storage bucket the way the app's user sees
// it. Each rule that grants the user anything becomes a tree:
//
//   - "public/*" is MNT/public, key for key.
//   - "protected/${sub}/*" under a listable "protected/*" is
//     MNT/protected/<id>: protected/ is listed for the ids that have files,
//     and the user's own id is always there.
//   - "private/${sub}/*" whose parent the user may not list collapses:
//     MNT/private ↔ private/<own id>/. Nobody else's private tree has a
//     path in the mount at all, whatever name is typed.
//
// Directories above the trees (the root) are built locally: Amplify's
// policies deny listing the bucket root and private/, so it is never tried.
type amplifyLayout struct {
	rules   *access.Rules
	subject access.Subject
	// trees are the mount prefixes backed by keys, longest first.
	trees []tree
}

type tree struct {
	mount string // path in the mount, e.g. "private" ("" for the whole bucket)
	key   string // key prefix it shows, e.g. "private/<id>/"
	// implicit is set for the user's own directory under a listed parent
	// (protected/<id>): it exists even before it has files.
	implicit bool
}

// AmplifyLayout builds the view of rules for subject.
func AmplifyLayout(rules *access.Rules, subject access.Subject) (Layout, error) {
	if subject.Authenticated && subject.IdentityID == "" {
		return nil, fmt.Errorf("a signed-in user needs an identity id")
	}
	if strings.Contains(subject.IdentityID, "/") {
		return nil, fmt.Errorf("identity id %q contains '/'", subject.IdentityID)
	}
	l := &amplifyLayout{rules: rules, subject: subject}
	seen := map[string]bool{}
	for _, r := range rules.Rules() {
		prefix, rights, ok := r.For(subject)
		if !ok || rights == access.None {
			continue // this user has nothing there: not shown
		}
		t := tree{key: prefix}
		if r.Owner() {
			parent, _, _ := strings.Cut(r.Prefix(), access.OwnerToken)
			// The parent is listed (ids shown) when the user may list it;
			// otherwise the owner segment collapses away.
			if rules.Allowed(parent+"\x00", subject).Has(access.List) {
				t.mount = strings.TrimSuffix(prefix, "/")
				t.implicit = true
			} else {
				t.mount = strings.TrimSuffix(strings.Replace(r.Prefix(), access.OwnerToken+"/", "", 1), "/")
			}
		} else {
			t.mount = strings.TrimSuffix(prefix, "/")
		}
		if seen[t.mount] {
			continue
		}
		seen[t.mount] = true
		l.trees = append(l.trees, t)
	}
	sort.Slice(l.trees, func(i, j int) bool { return len(l.trees[i].mount) > len(l.trees[j].mount) })
	return l, nil
}

// tree returns the tree containing p, and p's path below the tree's mount.
func (l *amplifyLayout) tree(p string) (*tree, string, bool) {
	for i := range l.trees {
		t := &l.trees[i]
		switch {
		case t.mount == "":
			return t, p, true
		case p == t.mount:
			return t, "", true
		case strings.HasPrefix(p, t.mount+"/"):
			return t, p[len(t.mount)+1:], true
		}
	}
	return nil, "", false
}

// Tree names the tree p is in (its mount path): renames between trees
// are EXDEV.
func (l *amplifyLayout) Tree(p string) (string, bool) {
	t, _, ok := l.tree(p)
	if !ok {
		return "", false
	}
	return t.mount, true
}

func (l *amplifyLayout) Classify(p string) Kind {
	if p != "" && !validPath(p) {
		return Absent
	}
	if _, rest, ok := l.tree(p); ok {
		if rest == "" {
			return Mapped
		}
		return Real
	}
	if len(l.Children(p)) > 0 {
		return Virtual
	}
	return Absent
}

func (l *amplifyLayout) Key(p string) string {
	t, rest, ok := l.tree(p)
	if !ok {
		return ""
	}
	if rest == "" {
		return strings.TrimSuffix(t.key, "/")
	}
	return t.key + rest
}

func (l *amplifyLayout) DirKey(p string) string {
	t, rest, ok := l.tree(p)
	if !ok {
		return ""
	}
	if rest == "" {
		return t.key
	}
	return t.key + rest + "/"
}

// Children lists the next segments of the trees below p: the entries of a
// virtual directory, and the user's own id in a listed parent.
func (l *amplifyLayout) Children(p string) []string {
	set := map[string]bool{}
	_, _, inTree := l.tree(p)
	for _, t := range l.trees {
		if inTree && !t.implicit {
			continue // inside a tree, the server's listing says what is there
		}
		var rest string
		switch {
		case p == "" && t.mount != "":
			rest = t.mount
		case strings.HasPrefix(t.mount, p+"/"):
			rest = t.mount[len(p)+1:]
		default:
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		set[name] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (l *amplifyLayout) Rights(key string) access.Rights {
	return l.rules.Allowed(key, l.subject)
}
