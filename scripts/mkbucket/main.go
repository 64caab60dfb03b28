// Command mkbucket creates a bucket on an S3 endpoint, if it is not there
// yet, and optionally puts one small object in it. `make demo` uses it so
// that the demo needs nothing but Go (no aws CLI).
//
//	go run ./scripts/mkbucket -endpoint http://127.0.0.1:7070 -bucket demo -put hello.txt='Hello!'
//
// Credentials and region come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
// and AWS_REGION.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint URL (path-style addressing is used)")
	bucket := flag.String("bucket", "", "bucket to create")
	put := flag.String("put", "", "KEY=BODY: an object to write after creating the bucket")
	flag.Parse()
	if err := run(*endpoint, *bucket, *put); err != nil {
		fmt.Fprintf(os.Stderr, "mkbucket: %v\n", err)
		os.Exit(1)
	}
}

func run(endpoint, bucket, put string) error {
	if endpoint == "" || bucket == "" {
		return errors.New("-endpoint and -bucket are required")
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = "us-east-1"
	}
	c := s3.New(s3.Options{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(
			os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	if put == "" {
		return nil
	}
	key, body, ok := strings.Cut(put, "=")
	if !ok || key == "" {
		return fmt.Errorf("-put %q: want KEY=BODY", put)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body),
	}); err != nil {
		return fmt.Errorf("put %s/%s: %w", bucket, key, err)
	}
	return nil
}
