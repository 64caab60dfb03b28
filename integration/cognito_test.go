package integration

// Signing in as an Amplify user (issue 5): the real binary talks to a local
// endpoint that speaks the Cognito JSON protocol (internal/fakecognito),
// which maps each identity to a versitygw account, so every S3 request is
// signed with credentials the identity pool handed out and authorised by
// the server's bucket policy. versitygw rejects session tokens, so the
// fake returns identity-pool credentials without one.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ampfs/ampfs/internal/fakecognito"
)

const (
	cogPoolID     = "us-east-1_AmpfsTest"
	cogClientID   = "ampfstestclient0000000000"
	cogIdentPool  = "us-east-1:0f0f0f0f-1111-4222-8333-444455556666"
	alicePassword = "Correct-Horse-Battery-1"
	guestIdentity = "us-east-1:33333333-3333-3333-3333-333333333333"
)

// writeOutputs writes an amplify_outputs.json for the fake pools and bucket,
// with Gen2 storage paths equal to the Gen1 defaults.
func writeOutputs(t *testing.T, bucket string) string {
	t.Helper()
	entity := "${cognito-identity.amazonaws.com:sub}"
	all := []string{"get", "list", "write", "delete"}
	doc := map[string]any{
		"version": "1.3",
		"auth": map[string]any{
			"aws_region": "us-east-1", "user_pool_id": cogPoolID, "user_pool_client_id": cogClientID,
			"identity_pool_id": cogIdentPool, "unauthenticated_identities_enabled": true,
		},
		"storage": map[string]any{
			"aws_region": "us-east-1", "bucket_name": bucket,
			"buckets": []any{map[string]any{
				"name": "files", "bucket_name": bucket, "aws_region": "us-east-1",
				"paths": map[string]any{
					"public/*":                   map[string]any{"guest": []string{"get", "list"}, "authenticated": all},
					"protected/*":                map[string]any{"authenticated": []string{"get", "list"}},
					"protected/" + entity + "/*": map[string]any{"entityidentity": all},
					"private/" + entity + "/*":   map[string]any{"entityidentity": all},
					"uploads/*":                  map[string]any{"authenticated": []string{"write"}},
				},
			}},
		},
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "amplify_outputs.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ampfsCmd runs the binary with input on stdin and returns its output.
func ampfsCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(ampfsBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("ampfs %s hung for 30 s", strings.Join(args, " "))
	}
	return o.String(), e.String(), err
}

// TestCognitoSignInAndMount: log in with SRP, mount with the stored
// session, work in the private tree while credentials expire every few
// seconds, then a revoked sign-in fails clearly. No token or password may
// reach any output or log.
func TestCognitoSignInAndMount(t *testing.T) {
	// Not parallel: the session dir and the Cognito endpoints are in the
	// environment (t.Setenv), as a user would have them.
	srv, bucket := startAmplifyServer(t, userA, guest)
	srv.PutBucketPolicy(t, bucket, bucketPolicy(gen1Statements(bucket, userA, true, nil), gen1Statements(bucket, guest, true, nil)))
	cog := fakecognito.Start(t, fakecognito.Options{Region: "us-east-1", UserPoolID: cogPoolID, ClientID: cogClientID,
		IdentityPoolID: cogIdentPool, TokenTTL: 3 * time.Second, CredentialsTTL: time.Second, AllowGuest: true})
	cog.AddUser(fakecognito.User{Username: "alice", Password: alicePassword, IdentityID: userA.identity,
		AccessKey: userA.access, SecretKey: userA.secret})
	cog.SetGuest(guestIdentity, guest.access, guest.secret)
	config := writeOutputs(t, bucket)
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", cog.URL)
	t.Setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY", cog.URL)
	var outputs []string // everything the binary printed, checked for secrets at the end

	t.Run("bad sign-ins", func(t *testing.T) {
		for _, tc := range []struct{ user, password, want string }{
			{"alice", "wrong-password", "incorrect username or password"},
			{"mallory", "whatever", "no such user"},
		} {
			out, errOut, err := ampfsCmd(t, tc.password+"\n", "login", "--config", config, "--user", tc.user, "--password-stdin")
			outputs = append(outputs, out, errOut)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if err == nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "ampfs: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("login %s: err %v, stderr %q; want one line with %q", tc.user, err, errOut, tc.want)
			}
		}
	})

	out, errOut, err := ampfsCmd(t, alicePassword+"\n", "login", "--config", config, "--user", "alice", "--password-stdin")
	outputs = append(outputs, out, errOut)
	if err != nil || !strings.Contains(out, userA.identity) {
		t.Fatalf("login: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	sessions, _ := filepath.Glob(filepath.Join(home, "ampfs", "sessions", "*.json"))
	if len(sessions) != 1 {
		t.Fatalf("session files: %v", sessions)
	}
	fi, err := os.Stat(sessions[0])
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	var stored struct {
		RefreshToken string `json:"refresh_token"`
	}
	data, _ := os.ReadFile(sessions[0])
	if err := json.Unmarshal(data, &stored); err != nil || stored.RefreshToken == "" {
		t.Fatalf("session file: %v", err)
	}

	who, errOut, err := ampfsCmd(t, "", "whoami", "--config", config)
	outputs = append(outputs, who, errOut)
	if err != nil || !strings.Contains(who, "alice") || !strings.Contains(who, userA.identity) || !strings.Contains(who, "expire") {
		t.Errorf("whoami: %v\n%s%s", err, who, errOut)
	}

	// The mount's own AWS credentials are bogus: everything must be signed
	// with what the identity pool hands out.
	m := mountAmpfs(t, srv.As("not-a-user", "not-a-secret"), bucket, "--layout", "amplify", "--config", config)
	if !m.logged("signed in") {
		t.Errorf("the mount did not log its sign-in:\n%s", m.log())
	}
	if got := strings.Fields(run(t, "ls", m.dir)); strings.Join(got, " ") != "private protected public uploads" {
		t.Errorf("top level = %q", got)
	}

	t.Run("200 MiB while credentials expire", func(t *testing.T) {
		before := cog.Calls("GetCredentialsForIdentity")
		src := filepath.Join(t.TempDir(), "big")
		sum := writeRandom(t, src, 200<<20)
		start := time.Now()
		run(t, "cp", src, m.path("private/big"))
		took := time.Since(start)
		during := cog.Calls("GetCredentialsForIdentity") - before
		got, size := objectSHA256(t, srv, bucket, "private/"+userA.identity+"/big")
		if got != sum || size != 200<<20 {
			t.Fatalf("object differs: %d bytes", size)
		}
		// Keep working past a few more expiries, then check renewals.
		for time.Since(start) < 7*time.Second {
			run(t, "ls", m.path("private"))
			time.Sleep(500 * time.Millisecond)
		}
		renewed := cog.Calls("GetCredentialsForIdentity") - before
		t.Logf("200 MiB in %v, credentials renewed %d times during the copy; %d times in %v", took.Round(time.Millisecond),
			during, renewed, time.Since(start).Round(time.Second))
		if during < 1 {
			t.Errorf("credentials with a 1 s lifetime were not renewed during a %v upload", took)
		}
		if renewed < 4 {
			t.Errorf("credentials with a 1 s lifetime were fetched %d times in %v", renewed, time.Since(start))
		}
		if n := cog.Calls("InitiateAuth"); n < 4 {
			t.Errorf("InitiateAuth %d times: the 3 s id token was not renewed with the refresh token", n)
		}
	})

	t.Run("guest", func(t *testing.T) {
		putObject(t, srv, bucket, "public/hello.txt", []byte("hi"))
		g := mountAmpfs(t, srv.As("not-a-user", "not-a-secret"), bucket, "--layout", "amplify", "--config", config, "--guest")
		if got := strings.TrimSpace(run(t, "ls", g.dir)); got != "public" {
			t.Errorf("guest top level = %q", got)
		}
		if got := run(t, "cat", g.path("public/hello.txt")); got != "hi" {
			t.Errorf("guest read %q", got)
		}
		outputs = append(outputs, g.log())
	})

	t.Run("revoked", func(t *testing.T) {
		cog.RevokeRefreshTokens("alice")
		_, errOut, err := ampfsCmd(t, "", "whoami", "--config", config)
		outputs = append(outputs, errOut)
		if err == nil || !strings.Contains(errOut, "run 'ampfs login' again") {
			t.Errorf("whoami after revoke: %v %q", err, errOut)
		}
		mnt := t.TempDir()
		start := time.Now()
		_, errOut, err = ampfsCmd(t, "", "mount", "--config", config, "--endpoint", srv.Endpoint, "--path-style", mnt)
		outputs = append(outputs, errOut)
		if err == nil || time.Since(start) > 10*time.Second || strings.Count(strings.TrimSpace(errOut), "\n") != 0 ||
			!strings.Contains(errOut, "expired or was revoked") {
			t.Errorf("mount after revoke (%v): %v %q", time.Since(start), err, errOut)
		}
		// The running mount: once its credentials run out, requests fail
		// with Permission denied, never a hang or an I/O error.
		m.expectErrors(".") // any line may mention the refused renewal
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := runErr(t, "cat", m.path("private/big"))
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the mount still reads 15 s after its sign-in was revoked")
			}
			time.Sleep(time.Second)
		}
		out, err := runErr(t, "ls", m.path("public"))
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("ls after revoke: %v %q, want Permission denied", err, out)
		}
	})

	outputs = append(outputs, m.log())
	for _, secret := range []string{alicePassword, stored.RefreshToken, userA.secret} {
		for _, o := range outputs {
			if strings.Contains(o, secret) {
				t.Errorf("a secret (%.6s…) appears in the output:\n%s", secret, tail(o, 20))
			}
		}
	}
}
