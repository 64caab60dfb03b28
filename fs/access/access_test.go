package access

import (
	"path/filepath"
	"testing"

	"github.com/ampfs/ampfs/internal/amplifyconfig"
)

const (
	alice = "us-east-1:11111111-1111-1111-1111-111111111111"
	bob   = "us-east-1:22222222-2222-2222-2222-222222222222"
)

var (
	guest = Subject{}
	userA = Subject{Authenticated: true, IdentityID: alice}
	userB = Subject{Authenticated: true, IdentityID: bob}
	admin = Subject{Authenticated: true, IdentityID: bob, Groups: []string{"admin"}}
)

func TestGen1(t *testing.T) {
	rs := Gen1()
	tests := []struct {
		key  string
		who  Subject
		want Rights
	}{
		{"public/x", guest, Get | List},
		{"public/x", userA, All},
		{"public/deep/er/x", userB, All},
		{"protected/" + alice + "/x", userA, All},
		{"protected/" + alice + "/x", userB, Get | List},
		{"protected/" + alice + "/x", guest, None},
		{"protected/\x00", userB, Get | List}, // listing protected/ itself
		{"private/" + alice + "/x", userA, All},
		{"private/" + alice + "/x", userB, None},
		{"private/" + alice + "/x", guest, None},
		{"private/x", userA, None}, // outside any identity's tree
		{"uploads/x", userA, Write},
		{"uploads/x", guest, None},
		{"other/x", userA, None},
		{"", userA, None},
		{"publicity", userA, None}, // a prefix match needs the slash
	}
	for _, tt := range tests {
		if got := rs.Allowed(tt.key, tt.who); got != tt.want {
			t.Errorf("Allowed(%q, %+v) = %v, want %v", tt.key, tt.who, got, tt.want)
		}
	}
}

func TestGen2Outputs(t *testing.T) {
	c, err := amplifyconfig.Load(filepath.Join("..", "..", "internal", "amplifyconfig", "testdata", "amplify_outputs.json"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := New(c.Paths)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		who  Subject
		want Rights
	}{
		{"public/x", guest, Get | List},
		{"public/x", userA, All},
		// A subpath overrides its parent: announcements are read-only to
		// users, writable by the admin group, invisible to guests.
		{"public/announcements/x", userA, Get | List},
		{"public/announcements/x", admin, All},
		{"public/announcements/x", guest, None},
		// Groups widen protected: admins may change anyone's files.
		{"protected/" + alice + "/x", admin, All},
		{"protected/" + alice + "/x", userB, Get | List},
		{"protected/" + bob + "/x", userB, All},
		{"private/" + alice + "/x", admin, None},
		{"media/albums/x", userA, Get | List},
		{"media/x", userA, None},
	}
	for _, tt := range tests {
		if got := rs.Allowed(tt.key, tt.who); got != tt.want {
			t.Errorf("Allowed(%q, %+v) = %v, want %v", tt.key, tt.who, got, tt.want)
		}
	}
}

func TestEntityTokenSpellings(t *testing.T) {
	for _, pattern := range []string{"docs/{entity_id}/*", "docs/" + OwnerToken + "/*"} {
		rs, err := New(map[string]map[string][]string{pattern: {WhoOwner: {"read", "write"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.Allowed("docs/"+alice+"/f", userA); got != Get|List|Write {
			t.Errorf("%s: owner has %v", pattern, got)
		}
		if got := rs.Allowed("docs/"+alice+"/f", userB); got != None {
			t.Errorf("%s: other user has %v", pattern, got)
		}
	}
}

func TestNewRejects(t *testing.T) {
	bad := []map[string]map[string][]string{
		{"public": {WhoGuest: {"get"}}},                      // no /*
		{"a/*/b/*": {WhoGuest: {"get"}}},                     // wildcard inside
		{"a/../*": {WhoGuest: {"get"}}},                      // dot-dot
		{"a//*": {WhoGuest: {"get"}}},                        // empty segment
		{"public/*": {"everyone": {"get"}}},                  // unknown subject
		{"public/*": {WhoGuest: {"fly"}}},                    // unknown action
		{"public/*": {WhoOwner: {"get"}}},                    // owner without token
		{"a/{entity_id}/{entity_id}/*": {WhoOwner: {"get"}}}, // token twice
	}
	for _, paths := range bad {
		if _, err := New(paths); err == nil {
			t.Errorf("New(%v) accepted", paths)
		}
	}
}
