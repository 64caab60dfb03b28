package auth

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/rs/zerolog"

	"github.com/ampfs/ampfs/internal/fakecognito"
)

const (
	testPoolID  = "us-east-1_TestPool1"
	testIdentPl = "us-east-1:99999999-8888-7777-6666-555555555555"
	aliceID     = "us-east-1:11111111-1111-1111-1111-111111111111"
)

func startCognito(t *testing.T, o fakecognito.Options) (*fakecognito.Server, Pool) {
	t.Helper()
	o.Region, o.UserPoolID, o.ClientID, o.IdentityPoolID = "us-east-1", testPoolID, "testclient", testIdentPl
	srv := fakecognito.Start(t, o)
	srv.AddUser(fakecognito.User{Username: "alice", Password: "Correct-Horse-1", IdentityID: aliceID,
		AccessKey: "AKALICE", SecretKey: "alice-secret", Groups: []string{"editors"}})
	srv.AddUser(fakecognito.User{Username: "newbie", Password: "Temp-Pass-1", IdentityID: "us-east-1:22222222-2222-2222-2222-222222222222",
		AccessKey: "AKNEW", SecretKey: "new-secret", MustChangePassword: true})
	srv.AddUser(fakecognito.User{Username: "pending", Password: "Pending-1", Unconfirmed: true})
	return srv, Pool{Region: "us-east-1", UserPoolID: testPoolID, ClientID: "testclient", IdentityPoolID: testIdentPl,
		UserPoolEndpoint: srv.URL, IdentityPoolEndpoint: srv.URL}
}

func TestSignIn(t *testing.T) {
	srv, pool := startCognito(t, fakecognito.Options{AllowGuest: true})
	tests := []struct {
		name, user, password string
		opts                 SignInOptions
		want                 error
	}{
		{"srp", "alice", "Correct-Horse-1", SignInOptions{}, nil},
		{"wrong password", "alice", "wrong", SignInOptions{}, ErrWrongPassword},
		{"unknown user", "mallory", "x", SignInOptions{}, ErrUnknownUser},
		{"unconfirmed", "pending", "Pending-1", SignInOptions{}, ErrUnconfirmed},
		{"password flow not enabled", "alice", "Correct-Horse-1", SignInOptions{PasswordAuth: true}, ErrFlowNotEnabled},
		{"new password required, no prompt", "newbie", "Temp-Pass-1", SignInOptions{}, ErrNeedNewPassword},
		{"new password required", "newbie", "Temp-Pass-1", SignInOptions{NewPassword: func() (string, error) { return "Brand-New-Pass-2", nil }}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := SignIn(t.Context(), pool, tt.user, tt.password, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && (tok.IDToken == "" || tok.RefreshToken == "" || !tok.Expires.After(time.Now())) {
				t.Errorf("tokens = %+v", tok)
			}
		})
	}
	// The new password took: the user signs in with it now.
	if _, err := SignIn(t.Context(), pool, "newbie", "Brand-New-Pass-2", SignInOptions{}); err != nil {
		t.Errorf("sign-in with the new password: %v", err)
	}
	if srv.Calls("InitiateAuth") == 0 || srv.Calls("RespondToAuthChallenge") == 0 {
		t.Error("the fake saw no sign-in")
	}
}

func TestPasswordAuthWhenAllowed(t *testing.T) {
	_, pool := startCognito(t, fakecognito.Options{AllowPasswordAuth: true})
	if _, err := SignIn(t.Context(), pool, "alice", "Correct-Horse-1", SignInOptions{PasswordAuth: true}); err != nil {
		t.Fatal(err)
	}
}

// Credentials that live for a second are renewed, id token included, and
// a revoked sign-in is a clear error, not a hang.
func TestCredentialsRenewAndRevoke(t *testing.T) {
	srv, pool := startCognito(t, fakecognito.Options{TokenTTL: 2 * time.Second, CredentialsTTL: time.Second})
	stored, err := Login(t.Context(), pool, "alice", "Correct-Horse-1", SignInOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stored.IdentityID != aliceID {
		t.Fatalf("identity = %q", stored.IdentityID)
	}
	sess, err := Resume(t.Context(), stored, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Groups) != 1 || sess.Groups[0] != "editors" {
		t.Errorf("groups = %q", sess.Groups)
	}
	deadline := time.Now().Add(3500 * time.Millisecond)
	for time.Now().Before(deadline) {
		c, err := sess.Credentials.Retrieve(t.Context())
		if err != nil {
			t.Fatalf("retrieve: %v", err)
		}
		if c.AccessKeyID != "AKALICE" || !c.Expires.After(time.Now()) {
			t.Fatalf("credentials %s expire %v", c.AccessKeyID, c.Expires)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := srv.Calls("GetCredentialsForIdentity"); n < 3 {
		t.Errorf("credentials fetched %d times in 3.5 s with a 1 s lifetime", n)
	}
	if n := srv.Calls("InitiateAuth"); n < 3 { // sign-in, Resume's refresh, renewals
		t.Errorf("InitiateAuth %d times; the 2 s id token was not renewed", n)
	}

	srv.RevokeRefreshTokens("alice")
	if _, err := Resume(t.Context(), stored, zerolog.Nop()); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("resume after revoke: %v, want ErrSessionExpired", err)
	}
	start := time.Now()
	var rerr error
	for time.Since(start) < 5*time.Second && rerr == nil {
		_, rerr = sess.Credentials.Retrieve(t.Context())
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(rerr, ErrSessionExpired) {
		t.Errorf("running session after revoke: %v, want ErrSessionExpired", rerr)
	}
}

func TestGuest(t *testing.T) {
	srv, pool := startCognito(t, fakecognito.Options{AllowGuest: true})
	srv.SetGuest("us-east-1:33333333-3333-3333-3333-333333333333", "AKGUEST", "guest-secret")
	g, err := Guest(t.Context(), pool, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.Credentials.Retrieve(t.Context())
	if err != nil || c.AccessKeyID != "AKGUEST" || !g.Guest || g.IdentityID == "" {
		t.Errorf("guest = %+v, creds %v %v", g, c.AccessKeyID, err)
	}
}

func TestLogoutRevokes(t *testing.T) {
	_, pool := startCognito(t, fakecognito.Options{})
	stored, err := Login(t.Context(), pool, "alice", "Correct-Horse-1", SignInOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := stored.Save(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := Logout(t.Context(), stored, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if _, err := Resume(t.Context(), stored, zerolog.Nop()); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("resume after logout: %v", err)
	}
}

// An id token the client still thinks valid but the identity pool finds
// expired (its clock ahead, or a token issued with seconds to live) is
// renewed and the credentials asked for once more, not turned into a
// refused sign-in. The CI failure of 2026-11-27: a 3 s token, a loaded
// machine, and `ls` got EACCES.
func TestIDTokenRefusedAsExpiredIsRenewed(t *testing.T) {
	var mu sync.Mutex
	ahead := time.Duration(0)
	poolNow := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(ahead)
	}
	srv, pool := startCognito(t, fakecognito.Options{Now: poolNow, TokenTTL: time.Minute, CredentialsTTL: time.Minute})
	stored, err := Login(t.Context(), pool, "alice", "Correct-Horse-1", SignInOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := Resume(t.Context(), stored, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ahead = 2 * time.Minute // every token issued so far is expired for the pool
	mu.Unlock()
	before := srv.Calls("InitiateAuth")
	sess.Credentials.(*aws.CredentialsCache).Invalidate()
	c, err := sess.Credentials.Retrieve(t.Context())
	if err != nil || c.AccessKeyID != "AKALICE" {
		t.Fatalf("retrieve with an id token the pool finds expired: %v", err)
	}
	if n := srv.Calls("InitiateAuth") - before; n != 1 {
		t.Errorf("the id token was renewed %d times, want 1", n)
	}
}
