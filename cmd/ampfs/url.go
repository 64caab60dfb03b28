package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/urfave/cli/v2"

	s3store "github.com/ampfs/ampfs/store/s3"
)

// maxPresignExpiry is S3's limit for a SigV4 presigned URL
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html).
const maxPresignExpiry = 7 * 24 * time.Hour

func urlCommand() *cli.Command {
	return &cli.Command{
		Name:  "url",
		Usage: "print a presigned GET URL for a file in a running mount (Amplify's getUrl)",
		Description: "The mount signs the URL with its own credentials, through its control socket\n" +
			"(/run/ampfs/HASH.sock for root, else $XDG_RUNTIME_DIR/ampfs/HASH.sock, HASH from the\n" +
			"mountpoint). An --expires longer than those credentials last (temporary Cognito\n" +
			"credentials: about an hour) or than S3's 7 days is refused: such a link would\n" +
			"stop working early.",
		ArgsUsage: "PATH",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "expires", Value: time.Hour, Usage: "how long the URL works"},
			&cli.BoolFlag{Name: "download", Usage: "make browsers save the file (Content-Disposition: attachment) instead of showing it"},
			&cli.StringFlag{Name: "control-socket", Usage: "the mount's control socket, if it was started with --control-socket"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return userErrorf("url needs PATH: ampfs url [--expires 1h] [--download] PATH")
			}
			mnt, rel, err := findMount(c.Args().First())
			if err != nil {
				return err
			}
			fi, err := os.Stat(c.Args().First())
			switch {
			case err != nil:
				return userErrorf("%v", err)
			case fi.IsDir():
				return userErrorf("%s is a directory: a URL is for a file", c.Args().First())
			}
			resp, err := callMount(c, mnt, controlRequest{Op: "url", Path: rel, Expires: c.Duration("expires"), Download: c.Bool("download")})
			if err != nil {
				return err
			}
			if resp.Error != "" {
				return userErrorf("%s: %s", c.Args().First(), resp.Error)
			}
			fmt.Println(resp.URL)
			return nil
		},
	}
}

func logLevelCommand() *cli.Command {
	return &cli.Command{
		Name:      "log-level",
		Usage:     "print or set the log level of a running mount (SIGUSR2 toggles debug too)",
		ArgsUsage: "MOUNTPOINT [debug|info|warn|error]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "control-socket", Usage: "the mount's control socket, if it was started with --control-socket"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return userErrorf("log-level needs MOUNTPOINT: ampfs log-level MOUNTPOINT [LEVEL]")
			}
			mnt, _, err := findMount(c.Args().First())
			if err != nil {
				return err
			}
			resp, err := callMount(c, mnt, controlRequest{Op: "log-level", Level: c.Args().Get(1)})
			if err != nil {
				return err
			}
			if resp.Error != "" {
				return userErrorf("%s", resp.Error)
			}
			fmt.Println(resp.Level)
			return nil
		},
	}
}

func callMount(c *cli.Context, mnt string, req controlRequest) (controlResponse, error) {
	socket := c.String("control-socket")
	if socket == "" {
		socket = controlSocketPath(mnt)
	}
	resp, err := controlCall(socket, req)
	if err != nil {
		return resp, userErrorf("cannot reach the mount at %s through %s (%v): is it an ampfs mount run by this user?", mnt, socket, rootCause(err, 0))
	}
	return resp, nil
}

// findMount returns the ampfs mount that holds p and p's path inside it.
func findMount(p string) (mountpoint, rel string, err error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", userErrorf("%s: %v", p, err)
	}
	// Resolve symbolic links outside the mount (/var -> /private/var);
	// the mount itself has none.
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	mounts, err := ampfsMounts()
	if err != nil {
		return "", "", userErrorf("reading the mount table: %v", err)
	}
	for _, m := range mounts {
		if (abs == m || strings.HasPrefix(abs, m+"/") || m == "/") && len(m) > len(mountpoint) {
			mountpoint = m
		}
	}
	if mountpoint == "" {
		return "", "", userErrorf("%s is not inside an ampfs mount", abs)
	}
	rel = strings.TrimPrefix(strings.TrimPrefix(abs, mountpoint), "/")
	return mountpoint, rel, nil
}

// ampfsMounts lists the mountpoints of type fuse.ampfs.
func ampfsMounts() ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i := 6; i+1 < len(f); i++ {
			if f[i] == "-" {
				if f[i+1] == "fuse.ampfs" {
					out = append(out, unescapeMount(f[4]))
				}
				break
			}
		}
	}
	return out, nil
}

// presigner signs GET URLs with the mount's S3 client and credentials.
type presigner struct {
	client *s3.Client
	bucket string
	now    func() time.Time
}

func newPresigner(b *s3store.Bucket) *presigner {
	return &presigner{client: b.Client(), bucket: b.Name(), now: time.Now}
}

// presign returns a GET URL for key valid for expires. The URL is signed
// with credentials retrieved now; it stops working when they expire, so an
// expires past that is refused, or with clamp (the xattr) shortened to it.
func (p *presigner) presign(ctx context.Context, key string, expires time.Duration, download, clamp bool) (string, error) {
	if expires <= 0 {
		return "", errors.New("--expires must be positive")
	}
	if expires > maxPresignExpiry {
		return "", fmt.Errorf("--expires %v is longer than S3 allows (7 days, 168h)", expires)
	}
	opts := p.client.Options()
	if opts.Credentials == nil {
		return "", errors.New("the mount has no credentials to sign with")
	}
	creds, err := opts.Credentials.Retrieve(ctx)
	if err != nil {
		return "", fmt.Errorf("credentials: %v", rootCause(err, 0))
	}
	if creds.CanExpire {
		left := creds.Expires.Sub(p.now()).Truncate(time.Second)
		if left <= 0 {
			return "", errors.New("the mount's credentials have expired; they are renewed on the next request: try again")
		}
		if expires > left {
			if !clamp {
				return "", fmt.Errorf("--expires %v is longer than the mount's credentials last (%v more, until %s): a link signed with them stops working then; give --expires %v or less",
					expires, left, creds.Expires.Local().Format(time.TimeOnly), left)
			}
			expires = left
		}
	}
	in := &s3.GetObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(key)}
	if download {
		in.ResponseContentDisposition = aws.String(attachment(path.Base(key)))
	}
	// Sign with exactly the credentials checked above, not whatever the
	// cache holds a moment later.
	pc := s3.NewPresignClient(p.client, func(o *s3.PresignOptions) {
		o.Expires = expires
		o.ClientOptions = append(o.ClientOptions, func(o *s3.Options) {
			o.Credentials = credentials.StaticCredentialsProvider{Value: creds}
		})
	})
	req, err := pc.PresignGetObject(ctx, in)
	if err != nil {
		return "", fmt.Errorf("presigning: %v", rootCause(err, 0))
	}
	return req.URL, nil
}

// attachment is a Content-Disposition that saves the file under its name
// (RFC 6266, with the RFC 5987 form for names that are not plain ASCII).
func attachment(name string) string {
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii, strings.ReplaceAll(url.QueryEscape(name), "+", "%20"))
}
