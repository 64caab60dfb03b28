package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// TestIAM pins down what the integration tests rely on: a user account is
// denied everything on the root's bucket until a policy grants it, and then
// gets exactly the actions, keys and (with an s3:prefix condition) list
// prefixes the policy names.
func TestIAM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw")
	}
	t.Parallel()
	srv := StartIAM(t)
	bucket := srv.CreateBucket(t, "iam-test")
	const access, secret = "user-a", "user-a-secret-0123456789"
	srv.CreateUser(t, access, secret)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root := srv.Client()
	user := srv.ClientFor(access, secret)
	if as := srv.As(access, secret); !strings.Contains(strings.Join(as.Env(), " "), "AWS_ACCESS_KEY_ID="+access) {
		t.Errorf("As(...).Env() = %q; want the user's access key", as.Env())
	}
	for _, k := range []string{"public/x", "other/x"} {
		if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("x")}); err != nil {
			t.Fatalf("root PutObject %s: %v", k, err)
		}
	}

	get := func(key string) error {
		_, err := user.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err
	}
	put := func(key string) error {
		_, err := user.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte("y"))})
		return err
	}
	del := func(key string) error {
		_, err := user.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err
	}
	list := func(prefix string) error {
		_, err := user.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
		return err
	}

	if err := get("public/x"); !isAccessDenied(err) {
		t.Errorf("GetObject before any policy: %v; want AccessDenied", err)
	}

	srv.PutBucketPolicy(t, bucket, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Principal":{"AWS":[%[1]q]},"Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":["arn:aws:s3:::%[2]s/public/*"]},
{"Effect":"Allow","Principal":{"AWS":[%[1]q]},"Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::%[2]s"],
 "Condition":{"StringLike":{"s3:prefix":["public/","public/*"]}}}]}`, access, bucket))

	for _, c := range []struct {
		what    string
		err     error
		allowed bool
	}{
		{"get public/x", get("public/x"), true},
		{"put public/y", put("public/y"), true},
		{"delete public/y", del("public/y"), true},
		{"list public/", list("public/"), true},
		{"get other/x", get("other/x"), false},
		{"put other/y", put("other/y"), false},
		{"delete other/x", del("other/x"), false},
		{"list root", list(""), false},
		{"list other/", list("other/"), false},
	} {
		switch {
		case c.allowed && c.err != nil:
			t.Errorf("%s: %v; want allowed", c.what, c.err)
		case !c.allowed && !isAccessDenied(c.err):
			t.Errorf("%s: %v; want AccessDenied", c.what, c.err)
		}
	}
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}
