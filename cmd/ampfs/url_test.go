package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func testPresigner(creds aws.Credentials, now time.Time) *presigner {
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://127.0.0.1:9"),
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
	})
	return &presigner{client: client, bucket: "b", now: func() time.Time { return now }}
}

func TestPresignExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	static := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}
	temporary := aws.Credentials{AccessKeyID: "ASIA", SecretAccessKey: "secret", SessionToken: "token",
		CanExpire: true, Expires: now.Add(50 * time.Minute)}
	for _, c := range []struct {
		name     string
		creds    aws.Credentials
		expires  time.Duration
		clamp    bool
		wantErr  string
		wantSecs string // X-Amz-Expires
	}{
		{name: "static, 1h", creds: static, expires: time.Hour, wantSecs: "3600"},
		{name: "static, 7 days", creds: static, expires: 7 * 24 * time.Hour, wantSecs: "604800"},
		{name: "static, 8 days", creds: static, expires: 8 * 24 * time.Hour, wantErr: "7 days"},
		{name: "zero", creds: static, expires: 0, wantErr: "positive"},
		{name: "temporary, within", creds: temporary, expires: 30 * time.Minute, wantSecs: "1800"},
		{name: "temporary, beyond: refused", creds: temporary, expires: time.Hour, wantErr: "--expires 50m0s or less"},
		{name: "temporary, beyond, clamped (xattr)", creds: temporary, expires: time.Hour, clamp: true, wantSecs: "3000"},
		{name: "expired", creds: aws.Credentials{AccessKeyID: "A", SecretAccessKey: "s", CanExpire: true, Expires: now.Add(-time.Second)},
			expires: time.Minute, wantErr: "expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u, err := testPresigner(c.creds, now).presign(context.Background(), "public/a b.txt", c.expires, false, c.clamp)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			if got := pu.Query().Get("X-Amz-Expires"); got != c.wantSecs {
				t.Errorf("X-Amz-Expires = %s, want %s", got, c.wantSecs)
			}
			if !strings.HasPrefix(pu.Path, "/b/public/a") {
				t.Errorf("path %s", pu.Path)
			}
		})
	}
}

func TestPresignDownload(t *testing.T) {
	u, err := testPresigner(aws.Credentials{AccessKeyID: "A", SecretAccessKey: "s"}, time.Now()).
		presign(context.Background(), "public/photos/été.jpg", time.Minute, true, false)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	want := `attachment; filename="_t_.jpg"; filename*=UTF-8''%C3%A9t%C3%A9.jpg`
	if got := pu.Query().Get("response-content-disposition"); got != want {
		t.Errorf("content disposition %q, want %q", got, want)
	}
}
