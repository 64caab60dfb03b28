// Package testserver starts a real S3 server (versitygw, pinned in
// tools/go.mod) on a free loopback port for tests. It is used by the store/s3
// conformance run and by the integration tests; nothing outside tests
// imports it.
package testserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

	t   testing.TB
	bin string
	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
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
	cmd := exec.Command(s.bin, "--access", AccessKey, "--secret", SecretKey,
		"--region", Region, "--port", s.Addr, "--quiet", "posix", s.DataDir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// No server outlives a test binary killed by -timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting versitygw: %v", err)
	}
	s.mu.Lock()
	s.cmd, s.log = cmd, logf
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

// Stop kills the server; data stays in DataDir. Safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	s.log.Close()
}

// Restart starts the server again on the same address and data.
func (s *Server) Restart() {
	s.Stop()
	s.start()
}

// Client returns an S3 client for the root account.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// CreateBucket makes a bucket and returns its name.
func (s *Server) CreateBucket(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Env returns the environment a subprocess needs to reach this server with
// the SDK's default credential chain.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
