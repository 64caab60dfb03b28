package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSessionStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sessions")
	pool := Pool{Region: "us-east-1", UserPoolID: "us-east-1_Pool1", ClientID: "c", IdentityPoolID: "us-east-1:p"}
	if _, err := FindSession(dir, "", ""); err != ErrNoSession {
		t.Fatalf("empty store: %v", err)
	}
	alice := &StoredSession{Pool: pool, Username: "alice@example.com", IdentityID: "us-east-1:a", RefreshToken: "rt-alice"}
	if err := alice.Save(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(alice.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("session dir mode %o, want 0700", di.Mode().Perm())
	}
	got, err := FindSession(dir, pool.UserPoolID, "")
	if err != nil || got.RefreshToken != "rt-alice" || got.IdentityID != "us-east-1:a" {
		t.Fatalf("find: %+v %v", got, err)
	}
	// A second user: the choice must be explicit.
	bob := &StoredSession{Pool: pool, Username: "../../bob", RefreshToken: "rt-bob"}
	if err := bob.Save(dir); err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(bob.Path()) != dir {
		t.Errorf("a username with ../ wrote outside the store: %s", bob.Path())
	}
	if _, err := FindSession(dir, "", ""); err == nil || !strings.Contains(err.Error(), "--user") {
		t.Errorf("two users, no choice: %v", err)
	}
	if s, err := FindSession(dir, "", "../../bob"); err != nil || s.RefreshToken != "rt-bob" {
		t.Errorf("find bob: %v", err)
	}
	if _, err := FindSession(dir, "other_pool", ""); err != ErrNoSession {
		t.Errorf("another pool: %v", err)
	}
	// A file others can read is refused, not used.
	os.Chmod(alice.Path(), 0o644)
	if _, err := LoadSessions(dir); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("0644 session file accepted: %v", err)
	}
	os.Chmod(alice.Path(), 0o600)
	if err := alice.Delete(); err != nil {
		t.Fatal(err)
	}
	if s, err := FindSession(dir, "", ""); err != nil || s.Username != "../../bob" {
		t.Errorf("after deleting alice: %v", err)
	}
}

func TestParseClaims(t *testing.T) {
	// header.{"exp":1700000000,"cognito:username":"alice","cognito:groups":["admin"]}.sig
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsImNvZ25pdG86dXNlcm5hbWUiOiJhbGljZSIsImNvZ25pdG86Z3JvdXBzIjpbImFkbWluIl19.c2ln"
	c, err := parseClaims(jwt)
	if err != nil || c.Exp != 1700000000 || c.Username != "alice" || len(c.Groups) != 1 || c.Groups[0] != "admin" {
		t.Errorf("claims = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a.bm90IGpzb24.c"} {
		if _, err := parseClaims(bad); err == nil {
			t.Errorf("parseClaims(%q) accepted", bad)
		}
	}
}
