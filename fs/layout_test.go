package fs

import (
	"slices"
	"strings"
	"testing"

	"github.com/ampfs/ampfs/fs/access"
)

const (
	idA = "us-east-1:11111111-1111-1111-1111-111111111111"
	idB = "us-east-1:22222222-2222-2222-2222-222222222222"
)

func gen1Layout(t testing.TB, s access.Subject) Layout {
	t.Helper()
	l, err := AmplifyLayout(access.Gen1(), s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAmplifyLayoutGen1(t *testing.T) {
	user := gen1Layout(t, access.Subject{Authenticated: true, IdentityID: idA})
	tests := []struct {
		path        string
		kind        Kind
		key, dirKey string
		children    []string
	}{
		{"", Virtual, "", "", []string{"private", "protected", "public", "uploads"}},
		{"public", Mapped, "public", "public/", nil},
		{"public/a/b.txt", Real, "public/a/b.txt", "public/a/b.txt/", nil},
		{"protected", Mapped, "protected", "protected/", []string{idA}},
		{"protected/" + idA, Mapped, "protected/" + idA, "protected/" + idA + "/", nil},
		{"protected/" + idB + "/x", Real, "protected/" + idB + "/x", "protected/" + idB + "/x/", nil},
		{"private", Mapped, "private/" + idA, "private/" + idA + "/", nil},
		{"private/notes.txt", Real, "private/" + idA + "/notes.txt", "", nil},
		// Another user's id typed under private/ stays inside one's own tree.
		{"private/" + idB + "/x", Real, "private/" + idA + "/" + idB + "/x", "", nil},
		{"uploads/f", Real, "uploads/f", "", nil},
		{"other", Absent, "", "", nil},
		{"public/../private", Absent, "", "", nil},
		{"public//x", Absent, "", "", nil},
	}
	for _, tt := range tests {
		if got := user.Classify(tt.path); got != tt.kind {
			t.Errorf("Classify(%q) = %v, want %v", tt.path, got, tt.kind)
		}
		if tt.kind == Absent {
			continue
		}
		if got := user.Key(tt.path); tt.key != "" && got != tt.key {
			t.Errorf("Key(%q) = %q, want %q", tt.path, got, tt.key)
		}
		if got := user.DirKey(tt.path); tt.dirKey != "" && got != tt.dirKey {
			t.Errorf("DirKey(%q) = %q, want %q", tt.path, got, tt.dirKey)
		}
		if got := user.Children(tt.path); !slices.Equal(got, tt.children) {
			t.Errorf("Children(%q) = %q, want %q", tt.path, got, tt.children)
		}
	}

	// A guest sees only what the rules give guests.
	guest := gen1Layout(t, access.Subject{})
	if got := guest.Children(""); !slices.Equal(got, []string{"public"}) {
		t.Errorf("guest top level = %q", got)
	}
	for _, p := range []string{"private", "protected", "uploads", "private/x"} {
		if k := guest.Classify(p); k != Absent {
			t.Errorf("guest Classify(%q) = %v", p, k)
		}
	}
}

func TestPermBits(t *testing.T) {
	tests := []struct {
		r    access.Rights
		dir  bool
		want uint32
	}{
		{access.All, true, 0o777},
		{access.All, false, 0o666},
		{access.Get | access.List, true, 0o555},
		{access.Get | access.List, false, 0o444},
		{access.Write, true, 0o333},
		{access.Write, false, 0o222},
		{access.None, true, 0},
	}
	for _, tt := range tests {
		if got := permBits(tt.r, tt.dir); got != tt.want {
			t.Errorf("permBits(%v, %v) = %o, want %o", tt.r, tt.dir, got, tt.want)
		}
	}
}

// FuzzAmplifyLayoutKeys: whatever path the kernel hands over, its key stays
// in the tree the path names, and nothing reaches another identity's
// private tree or escapes with "..", "." or empty segments.
func FuzzAmplifyLayoutKeys(f *testing.F) {
	for _, seed := range []string{"", "private", "private/x", "private/../protected", "public//a", "protected/" + idB + "/f",
		"private/" + idB, "./private", "uploads/a/b", "public/a/./b", "private/\x00", strings.Repeat("a/", 200)} {
		f.Add(seed)
	}
	l := gen1Layout(f, access.Subject{Authenticated: true, IdentityID: idA})
	f.Fuzz(func(t *testing.T, p string) {
		kind := l.Classify(p)
		if kind == Absent || kind == Virtual {
			return
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("Classify(%q) = %v for a path with segment %q", p, kind, seg)
			}
		}
		key, dirKey := l.Key(p), l.DirKey(p)
		top, _, _ := strings.Cut(p, "/")
		wantPrefix := top + "/"
		if top == "private" {
			wantPrefix = "private/" + idA + "/"
		}
		if !strings.HasPrefix(dirKey, wantPrefix) || !strings.HasPrefix(key+"/", wantPrefix) {
			t.Fatalf("path %q → key %q, dir %q: outside %q", p, key, dirKey, wantPrefix)
		}
		if strings.HasPrefix(key, "private/") && !strings.HasPrefix(key, "private/"+idA+"/") && key != "private/"+idA {
			t.Fatalf("path %q reaches another private tree: %q", p, key)
		}
		for _, seg := range strings.Split(strings.TrimSuffix(dirKey, "/"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("path %q → key %q has segment %q", p, dirKey, seg)
			}
		}
	})
}
