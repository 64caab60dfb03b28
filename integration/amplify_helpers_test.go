package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ampfs/ampfs/internal/testserver"
)

// Identity-pool ids of the test users, shaped like Cognito's
// (REGION:UUID). The colon is part of the directory name under protected/.
const (
	idA = "us-east-1:11111111-1111-1111-1111-111111111111"
	idB = "us-east-1:22222222-2222-2222-2222-222222222222"
	idC = "us-east-1:33333333-3333-3333-3333-333333333333"
)

// amplifyUser is one versitygw account standing for one Cognito identity:
// in production the identity pool hands out temporary credentials of the
// authenticated (or unauthenticated) role, whose policy is written in terms
// of ${cognito-identity.amazonaws.com:sub}. versitygw has no such variables,
// so each identity gets its own account and the bucket policy names the
// identity id literally in that account's statements.
type amplifyUser struct {
	access, secret string
	identity       string // "" for a guest
}

var (
	userA = amplifyUser{"amplify-user-a", "amplify-user-a-secret-0123456789", idA}
	userB = amplifyUser{"amplify-user-b", "amplify-user-b-secret-0123456789", idB}
	userC = amplifyUser{"amplify-user-c", "amplify-user-c-secret-0123456789", idC}
	guest = amplifyUser{"amplify-guest", "amplify-guest-secret-01234567890", ""}
)

// policyStatement is one statement of an S3 bucket policy.
type policyStatement struct {
	Effect    string                         `json:"Effect"`
	Principal map[string][]string            `json:"Principal"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

func allow(account string, actions []string, resources ...string) policyStatement {
	return policyStatement{
		Effect:    "Allow",
		Principal: map[string][]string{"AWS": {account}},
		Action:    actions,
		Resource:  resources,
	}
}

var (
	getPutDelete = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
	getOnly      = []string{"s3:GetObject"}
	putOnly      = []string{"s3:PutObject"}
	putDelete    = []string{"s3:PutObject", "s3:DeleteObject"}
	listBucket   = []string{"s3:ListBucket"}
)

// gen1Statements returns, for one account, the statements that grant it
// what the Amplify Gen1 default IAM policies grant its identity (the
// auth role's policy for a signed-in identity, the unauth role's for a
// guest), one statement per prefix:
//
//	signed-in identity ID:
//	  public/*          s3:GetObject s3:PutObject s3:DeleteObject
//	  protected/*       s3:GetObject
//	  protected/ID/*    s3:PutObject s3:DeleteObject
//	  private/ID/*      s3:GetObject s3:PutObject s3:DeleteObject
//	  uploads/*         s3:PutObject
//	  (bucket)          s3:ListBucket
//	guest:
//	  public/*          s3:GetObject
//	  (bucket)          s3:ListBucket
//
// With scopedList false, s3:ListBucket is unconditional (the whole bucket
// can be listed). With scopedList true it carries Amplify's own condition,
// StringLike s3:prefix in public/, public/*, protected/, protected/*,
// private/ID/, private/ID/* (public/ and public/* only for a guest), so a
// listing of the bucket root, of private/ or of uploads/ is denied by the
// server just as on AWS.
//
// drop removes actions from the statement of one prefix ("public/*" →
// {"s3:DeleteObject"}), for a policy narrower than the rules ampfs applies.
func gen1Statements(bucket string, u amplifyUser, scopedList bool, drop map[string][]string) []policyStatement {
	obj := func(prefix string) string { return "arn:aws:s3:::" + bucket + "/" + prefix }
	type grant struct {
		prefix  string
		actions []string
	}
	var grants []grant
	listPrefixes := []string{"public/", "public/*"}
	if u.identity == "" {
		grants = []grant{{"public/*", getOnly}}
	} else {
		id := u.identity
		grants = []grant{
			{"public/*", getPutDelete},
			{"protected/*", getOnly},
			{"protected/" + id + "/*", putDelete},
			{"private/" + id + "/*", getPutDelete},
			{"uploads/*", putOnly},
		}
		listPrefixes = append(listPrefixes, "protected/", "protected/*", "private/"+id+"/", "private/"+id+"/*")
	}
	var out []policyStatement
	for _, g := range grants {
		actions := slices.DeleteFunc(slices.Clone(g.actions), func(a string) bool {
			return slices.Contains(drop[g.prefix], a)
		})
		if len(actions) > 0 {
			out = append(out, allow(u.access, actions, obj(g.prefix)))
		}
	}
	list := allow(u.access, listBucket, "arn:aws:s3:::"+bucket)
	if scopedList {
		list.Condition = map[string]map[string][]string{"StringLike": {"s3:prefix": listPrefixes}}
	}
	return append(out, list)
}

// bucketPolicy returns the policy document with these statements.
func bucketPolicy(statements ...[]policyStatement) string {
	doc := struct {
		Version   string            `json:"Version"`
		Statement []policyStatement `json:"Statement"`
	}{Version: "2012-10-17"}
	for _, s := range statements {
		doc.Statement = append(doc.Statement, s...)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// startAmplifyServer starts versitygw with IAM, one bucket owned by the
// root account and the given user accounts, and returns both.
func startAmplifyServer(t *testing.T, users ...amplifyUser) (*testserver.Server, string) {
	t.Helper()
	srv := testserver.StartIAM(t)
	bucket := srv.CreateBucket(t, "ampfs-amplify")
	for _, u := range users {
		srv.CreateUser(t, u.access, u.secret)
	}
	return srv, bucket
}

// mountAs mounts the bucket with --layout amplify as u: its account's
// credentials in the environment, and --identity-id (or --guest).
func mountAs(t *testing.T, srv *testserver.Server, bucket string, u amplifyUser, args ...string) *mount {
	t.Helper()
	who := []string{"--layout", "amplify", "--guest"}
	if u.identity != "" {
		who = []string{"--layout", "amplify", "--identity-id", u.identity}
	}
	return mountAmpfs(t, srv.As(u.access, u.secret), bucket, append(who, args...)...)
}

// mustFail runs a command that must fail with want (an strerror text such
// as "Permission denied") in its output, and never with an I/O error.
func mustFail(t *testing.T, want string, name string, args ...string) {
	t.Helper()
	out, err := runErr(t, name, args...)
	switch {
	case err == nil:
		t.Errorf("%s %s succeeded (output %q); want it to fail with %q", name, strings.Join(args, " "), out, want)
	case strings.Contains(out, "Input/output error"):
		t.Errorf("%s %s: %q; want %q, not EIO", name, strings.Join(args, " "), out, want)
	case !strings.Contains(out, want):
		t.Errorf("%s %s: %v, output %q; want %q", name, strings.Join(args, " "), err, out, want)
	}
}

// mustShellFail is mustFail for a shell command line.
func mustShellFail(t *testing.T, want, line string) {
	t.Helper()
	mustFail(t, want, "sh", "-c", line)
}

// objectState is what "unchanged on the server" compares: ETag, size and
// the body's sha256, read as the root account.
type objectState struct {
	etag, sum string
	size      int64
}

func (o objectState) String() string {
	return fmt.Sprintf("etag %s, %d bytes, sha256 %s", o.etag, o.size, o.sum)
}

// stateOf returns the object's state; ok is false when it does not exist.
func stateOf(t *testing.T, srv *testserver.Server, bucket, key string) (objectState, bool) {
	t.Helper()
	h := headObject(t, srv, bucket, key)
	if h == nil {
		return objectState{}, false
	}
	sum, size := objectSHA256(t, srv, bucket, key)
	return objectState{etag: aws.ToString(h.ETag), sum: sum, size: size}, true
}

// waitObject waits for the mount to have uploaded key (close may return
// before the upload is done) and returns its state.
func waitObject(t *testing.T, srv *testserver.Server, bucket, key string) objectState {
	t.Helper()
	eventually(t, uploadWait, func() error {
		if headObject(t, srv, bucket, key) == nil {
			return fmt.Errorf("object %s not in the bucket; keys: %q", key, listKeys(t, srv, bucket, ""))
		}
		return nil
	})
	st, _ := stateOf(t, srv, bucket, key)
	return st
}

// modeOf returns `stat -c %a path`.
func modeOf(t *testing.T, path string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "stat", "-c", "%a", path))
}

// warnLines returns the log lines at level warn that contain s. A request
// the server refused is logged with "access denied" in its error, whether
// the reply was AccessDenied or a bodiless 403 to a HEAD ("Forbidden").
func (m *mount) warnLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(m.log()))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Level == "warn" && strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}
