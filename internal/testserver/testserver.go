// Package testserver starts a real S3 server (versitygw, pinned in
// tools/go.mod) on a free loopback port for tests. It is used by the store/s3
// conformance run and by the integration tests; nothing outside tests
// imports it.
//
// Start runs the server with only its root account. StartIAM also enables
// versitygw's internal IAM (--iam-dir): user accounts are created through
// the admin API (`versitygw admin create-user --role user`, see CreateUser)
// and get nothing on a bucket they do not own until a bucket policy, put by
// the root account (PutBucketPolicy), grants it. Policy principals are the
// users' access key ids; Resource ARNs are arn:aws:s3:::BUCKET for bucket
// actions (s3:ListBucket) and arn:aws:s3:::BUCKET/KEY-PATTERN for object
// actions. versitygw v1.8 evaluates Condition blocks (s3:prefix with
// StringLike among them) but no policy variables.
package testserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials of the server's root account.
const (
	AccessKey = "ampfs-test-access"
	SecretKey = "ampfs-test-secret-key-0123456789"
	Region    = "us-east-1"
)

// Server is one running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Addr     string // 127.0.0.1:PORT
	DataDir  string

	t      testing.TB
	bin    string
	iamDir string // non-empty: internal IAM enabled (StartIAM)
	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *os.File
	done   <-chan error // the process's Wait result (StartPinned)

	// A view made by As: the same server, other credentials. Stop and
	// Restart act on root.
	root           *Server
	access, secret string
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns the path of the versitygw binary: $AMPFS_VERSITYGW when
// set (the Makefile builds it once), else built from tools/go.mod into the
// user's cache dir.
func Binary() (string, error) {
	if p := os.Getenv("AMPFS_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AMPFS_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir := filepath.Join(root, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		tmp, err := os.CreateTemp(dir, ".versitygw-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-o", tmp.Name(), "github.com/versity/versitygw/cmd/versitygw")
		cmd.Dir = filepath.Join(root, "tools")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			buildErr = fmt.Errorf("building versitygw: %v\n%s", err, out)
			return
		}
		buildPath = filepath.Join(dir, "versitygw")
		buildErr = os.Rename(tmp.Name(), buildPath)
	})
	return buildPath, buildErr
}

func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot find the repository root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
}

// Start runs a fresh versitygw with an empty data dir; it is stopped when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	s := &Server{t: t, bin: bin, DataDir: t.TempDir()}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// StartIAM is Start with versitygw's internal IAM enabled (accounts kept in
// a temporary --iam-dir, its cache disabled so new users and policies count
// at once). The root account (AccessKey, SecretKey) is as with Start; add
// user accounts with CreateUser and grant them rights with PutBucketPolicy.
func StartIAM(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	s := &Server{t: t, bin: bin, DataDir: t.TempDir(), iamDir: t.TempDir()}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *Server) start() {
	s.t.Helper()
	if s.Addr == "" {
		s.Addr = freeAddr(s.t)
		s.Endpoint = "http://" + s.Addr
	}
	logf, err := os.CreateTemp(s.t.TempDir(), "versitygw-*.log")
	if err != nil {
		s.t.Fatal(err)
	}
	args := []string{"--access", AccessKey, "--secret", SecretKey,
		"--region", Region, "--port", s.Addr, "--quiet"}
	if s.iamDir != "" {
		args = append(args, "--iam-dir", s.iamDir, "--iam-cache-disable")
	}
	cmd := exec.Command(s.bin, append(args, "posix", s.DataDir)...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// No server outlives a test binary killed by -timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done, err := StartPinned(cmd)
	if err != nil {
		s.t.Fatalf("starting versitygw: %v", err)
	}
	s.mu.Lock()
	s.cmd, s.log, s.done = cmd, logf, done
	s.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logf.Name())
			s.t.Fatalf("versitygw did not listen on %s: %v\n%s", s.Addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server; data (and IAM accounts) stay. Safe to call twice.
func (s *Server) Stop() {
	if s.root != nil {
		s.root.Stop()
		return
	}
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	s.log.Close()
}

// Restart starts the server again on the same address and data.
func (s *Server) Restart() {
	if s.root != nil {
		s.root.Restart()
		return
	}
	s.Stop()
	s.start()
}

// creds returns the access key pair this Server value acts with: the root
// account's, or a user's for a view made by As.
func (s *Server) creds() (access, secret string) {
	if s.root != nil {
		return s.access, s.secret
	}
	return AccessKey, SecretKey
}

// Client returns an S3 client for the root account (for a view made by As,
// for its user).
func (s *Server) Client() *s3.Client {
	return s.ClientFor(s.creds())
}

// ClientFor returns an S3 client that signs with the given account.
func (s *Server) ClientFor(access, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
	})
}

// As returns a view of the same running server whose Env and Client use
// the given account instead of the root account, so that helpers taking a
// *Server (a mount helper, say) act as that user. Stop and Restart on the
// view act on the server itself.
func (s *Server) As(access, secret string) *Server {
	root := s
	if s.root != nil {
		root = s.root
	}
	return &Server{
		Endpoint: root.Endpoint,
		Addr:     root.Addr,
		DataDir:  root.DataDir,
		t:        root.t,
		bin:      root.bin,
		iamDir:   root.iamDir,
		root:     root,
		access:   access,
		secret:   secret,
	}
}

// CreateUser adds an account with role "user" through versitygw's admin
// API (`versitygw admin create-user`). The server must have been started
// with StartIAM. A user account owns nothing: it may do on the root's
// buckets only what a bucket policy grants it.
func (s *Server) CreateUser(t testing.TB, access, secret string) {
	t.Helper()
	if s.iamDir == "" && (s.root == nil || s.root.iamDir == "") {
		t.Fatalf("CreateUser %s: the server was not started with StartIAM", access)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "admin",
		"--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--endpoint-url", s.Endpoint,
		"create-user", "--access", access, "--secret", secret, "--role", "user")
	// The admin CLI reads ADMIN_* variables; keep the caller's out of it.
	cmd.Env = filterEnv(os.Environ(), "ADMIN_")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("versitygw admin create-user %s: %v\n%s", access, err, out)
	}
}

func filterEnv(env []string, prefix string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	return out
}

// PutBucketPolicy sets the bucket's policy (a JSON document) as the root
// account.
func (s *Server) PutBucketPolicy(t testing.TB, bucket, policy string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.ClientFor(AccessKey, SecretKey).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket), Policy: aws.String(policy),
	})
	if err != nil {
		t.Fatalf("PutBucketPolicy %s: %v\npolicy: %s", bucket, err, policy)
	}
}

// CreateBucket makes a bucket, owned by the root account, and returns its
// name.
func (s *Server) CreateBucket(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.ClientFor(AccessKey, SecretKey).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Env returns the environment a subprocess needs to reach this server with
// the SDK's default credential chain, as the root account (for a view made
// by As, as its user).
func (s *Server) Env() []string {
	return s.EnvFor(s.creds())
}

// EnvFor is Env for the given account.
func (s *Server) EnvFor(access, secret string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + access,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
