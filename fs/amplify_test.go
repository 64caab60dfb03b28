package fs

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ampfs/ampfs/fs/access"
	"github.com/ampfs/ampfs/store"
	"github.com/ampfs/ampfs/store/memstore"
)

func mountAs(t *testing.T, b *memstore.Bucket, s access.Subject) *testMount {
	t.Helper()
	return mountLayout(t, b, gen1Layout(t, s))
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestAmplifyLayoutMount(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "public/hello.txt", []byte("hi"))
	put(t, b, "protected/"+idB+"/shared.txt", []byte("from B"))
	put(t, b, "private/"+idB+"/secret.txt", []byte("B only"))
	a := mountAs(t, b, access.Subject{Authenticated: true, IdentityID: idA})

	b.ResetCalls()
	if got := names(t, a.dir); !slices.Equal(got, []string{"private/", "protected/", "public/", "uploads/"}) {
		t.Errorf("top level = %q", got)
	}
	if n := b.TotalCalls(); n != 0 {
		t.Errorf("listing the top level sent %d requests; it is built locally", n)
	}
	if got := names(t, a.path("protected")); !slices.Equal(got, []string{idA + "/", idB + "/"}) {
		t.Errorf("protected = %q (own id must always be there)", got)
	}

	// Own trees: writable, with the keys Amplify uses.
	for p, key := range map[string]string{
		"private/notes.txt":           "private/" + idA + "/notes.txt",
		"protected/" + idA + "/p.txt": "protected/" + idA + "/p.txt",
		"public/a.txt":                "public/a.txt",
		"uploads/u.bin":               "uploads/u.bin",
	} {
		if err := os.WriteFile(a.path(p), []byte(p), 0o644); err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
		if got := object(t, b, key); string(got) != p {
			t.Errorf("%s → %q = %q", p, key, got)
		}
	}
	if got := names(t, a.path("private")); !slices.Equal(got, []string{"notes.txt"}) {
		t.Errorf("private = %q (must be A's own only)", got)
	}
	for p, want := range map[string]os.FileMode{
		"":                                 0o555,
		"public":                           0o755,
		"protected":                        0o555,
		"protected/" + idA:                 0o755,
		"protected/" + idA + "/p.txt":      0o644,
		"protected/" + idB:                 0o555,
		"protected/" + idB + "/shared.txt": 0o444,
		"private":                          0o755,
		"uploads":                          0o311,
	} {
		if got := mode(t, a.path(p)); got != want {
			t.Errorf("mode of %q = %o, want %o", p, got, want)
		}
	}

	// B's protected files: readable, and nothing that changes them is even
	// sent.
	if got, err := os.ReadFile(a.path("protected/" + idB + "/shared.txt")); err != nil || string(got) != "from B" {
		t.Errorf("read B's protected file: %q %v", got, err)
	}
	b.ResetCalls()
	other := a.path("protected/" + idB + "/shared.txt")
	denied := map[string]error{
		"overwrite":    os.WriteFile(other, []byte("x"), 0o644),
		"create":       os.WriteFile(a.path("protected/"+idB+"/new"), []byte("x"), 0o644),
		"remove":       os.Remove(other),
		"rename":       os.Rename(other, a.path("public/stolen")),
		"truncate":     os.Truncate(other, 0),
		"mkdir":        os.Mkdir(a.path("protected/"+idB+"/d"), 0o755),
		"top level":    os.Mkdir(a.path("mine"), 0o755),
		"chtimes":      os.Chtimes(other, time.Now(), time.Now()),
		"list uploads": func() error { _, err := os.ReadDir(a.path("uploads")); return err }(),
	}
	for op, err := range denied {
		if !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s: %v, want EACCES", op, err)
		}
	}
	if n := b.Calls(memstore.OpPutObject) + b.Calls(memstore.OpDeleteObject) + b.Calls(memstore.OpCopyObject); n != 0 {
		t.Errorf("denied operations sent %d writes", n)
	}
	if got := object(t, b, "protected/"+idB+"/shared.txt"); string(got) != "from B" {
		t.Errorf("B's file changed: %q", got)
	}

	// Nobody else's private tree is reachable, whatever is typed.
	for _, p := range []string{"private/" + idB + "/secret.txt", "private/secret.txt", "private/../private/" + idB} {
		if _, err := os.ReadFile(a.path(p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("read %s: %v, want ENOENT", p, err)
		}
	}
}

func TestAmplifyGuest(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "public/hello.txt", []byte("hi"))
	g := mountAs(t, b, access.Subject{})
	if got := names(t, g.dir); !slices.Equal(got, []string{"public/"}) {
		t.Errorf("guest top level = %q", got)
	}
	if got, err := os.ReadFile(g.path("public/hello.txt")); err != nil || string(got) != "hi" {
		t.Errorf("guest read: %q %v", got, err)
	}
	if err := os.WriteFile(g.path("public/x"), nil, 0o644); !errors.Is(err, syscall.EACCES) {
		t.Errorf("guest write: %v, want EACCES", err)
	}
	if got := mode(t, g.path("public/hello.txt")); got != 0o444 {
		t.Errorf("guest sees mode %o", got)
	}
}

// When the server denies what the rules allowed (policies narrower than the
// config), the user gets EACCES, not EIO, and the mount goes on.
func TestAmplifyServerDenies(t *testing.T) {
	b := memstore.New(memstore.Options{})
	put(t, b, "public/f", []byte("x"))
	a := mountAs(t, b, access.Subject{Authenticated: true, IdentityID: idA})
	b.SetFault(memstore.OpDeleteObject, &store.OpError{Op: "DeleteObject", Kind: store.ErrAccessDenied, Code: "AccessDenied"}, 1)
	if err := os.Remove(a.path("public/f")); !errors.Is(err, syscall.EACCES) {
		t.Errorf("remove denied by the server: %v, want EACCES", err)
	}
	if got := names(t, a.path("public")); !slices.Equal(got, []string{"f"}) {
		t.Errorf("after the denial: %q", got)
	}
}
