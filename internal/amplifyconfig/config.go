// Package amplifyconfig reads an Amplify app's client configuration: Gen2's
// amplify_outputs.json and Gen1's amplifyconfiguration.json (or the
// aws-exports shape of it). It returns plain values; the storage rules go
// to fs/access, the Cognito settings to auth.
package amplifyconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// Config is what ampfs needs from an Amplify configuration file.
type Config struct {
	// Gen is 2 for amplify_outputs.json, 1 for amplifyconfiguration.json.
	Gen int
	// Bucket and Region of the default storage bucket.
	Bucket, Region string
	// Paths are Gen2's storage access rules (pattern → subject → actions);
	// nil for Gen1, whose rules are the built-in defaults.
	Paths map[string]map[string][]string
	// Cognito settings; empty where the file has none.
	UserPoolID, UserPoolClientID, IdentityPoolID, AuthRegion string
	// GuestAccess is whether unauthenticated identities are enabled.
	GuestAccess bool
}

// gen2 is the subset of amplify_outputs.json ampfs reads.
type gen2 struct {
	Version string `json:"version"`
	Auth    *struct {
		Region           string `json:"aws_region"`
		UserPoolID       string `json:"user_pool_id"`
		UserPoolClientID string `json:"user_pool_client_id"`
		IdentityPoolID   string `json:"identity_pool_id"`
		Unauthenticated  bool   `json:"unauthenticated_identities_enabled"`
	} `json:"auth"`
	Storage *struct {
		Region  string `json:"aws_region"`
		Bucket  string `json:"bucket_name"`
		Buckets []struct {
			Name   string                         `json:"name"`
			Bucket string                         `json:"bucket_name"`
			Region string                         `json:"aws_region"`
			Paths  map[string]map[string][]string `json:"paths"`
		} `json:"buckets"`
	} `json:"storage"`
}

// gen1 is the subset of amplifyconfiguration.json / aws-exports ampfs
// reads, in both of its shapes (flat keys, and the plugins tree of the
// mobile libraries).
type gen1 struct {
	Bucket         string `json:"aws_user_files_s3_bucket"`
	BucketRegion   string `json:"aws_user_files_s3_bucket_region"`
	IdentityPoolID string `json:"aws_cognito_identity_pool_id"`
	CognitoRegion  string `json:"aws_cognito_region"`
	UserPoolID     string `json:"aws_user_pools_id"`
	ClientID       string `json:"aws_user_pools_web_client_id"`
	Storage        *struct {
		Plugins struct {
			S3 struct {
				Bucket string `json:"bucket"`
				Region string `json:"region"`
			} `json:"awsS3StoragePlugin"`
		} `json:"plugins"`
	} `json:"storage"`
	Auth *struct {
		Plugins struct {
			Cognito struct {
				CredentialsProvider struct {
					CognitoIdentity struct {
						Default struct {
							PoolID string `json:"PoolId"`
							Region string `json:"Region"`
						} `json:"Default"`
					} `json:"CognitoIdentity"`
				} `json:"CredentialsProvider"`
				CognitoUserPool struct {
					Default struct {
						PoolID      string `json:"PoolId"`
						AppClientID string `json:"AppClientId"`
						Region      string `json:"Region"`
					} `json:"Default"`
				} `json:"CognitoUserPool"`
			} `json:"awsCognitoAuthPlugin"`
		} `json:"plugins"`
	} `json:"auth"`
}

// Load reads and parses path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads either format, telling them apart by their keys.
func Parse(data []byte) (*Config, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, ok := probe["version"]; ok {
		return parseGen2(data)
	}
	return parseGen1(data)
}

func parseGen2(data []byte) (*Config, error) {
	var g gen2
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("amplify_outputs.json: %w", err)
	}
	if g.Storage == nil || (g.Storage.Bucket == "" && len(g.Storage.Buckets) == 0) {
		return nil, errors.New("amplify_outputs.json has no storage: add defineStorage to the app's backend")
	}
	c := &Config{Gen: 2, Bucket: g.Storage.Bucket, Region: g.Storage.Region}
	for _, b := range g.Storage.Buckets {
		// The default bucket is the top-level bucket_name; its rules are
		// in the buckets entry of the same name.
		if b.Bucket == c.Bucket || c.Bucket == "" {
			c.Bucket = b.Bucket
			if b.Region != "" {
				c.Region = b.Region
			}
			c.Paths = b.Paths
			break
		}
	}
	if g.Auth != nil {
		c.UserPoolID, c.UserPoolClientID = g.Auth.UserPoolID, g.Auth.UserPoolClientID
		c.IdentityPoolID, c.AuthRegion = g.Auth.IdentityPoolID, g.Auth.Region
		c.GuestAccess = g.Auth.Unauthenticated
	}
	return c, nil
}

func parseGen1(data []byte) (*Config, error) {
	var g gen1
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, fmt.Errorf("amplifyconfiguration.json: %w", err)
	}
	c := &Config{Gen: 1, Bucket: g.Bucket, Region: g.BucketRegion,
		IdentityPoolID: g.IdentityPoolID, UserPoolID: g.UserPoolID,
		UserPoolClientID: g.ClientID, AuthRegion: g.CognitoRegion}
	if g.Storage != nil && c.Bucket == "" {
		c.Bucket, c.Region = g.Storage.Plugins.S3.Bucket, g.Storage.Plugins.S3.Region
	}
	if g.Auth != nil {
		cog := g.Auth.Plugins.Cognito
		if c.IdentityPoolID == "" {
			c.IdentityPoolID = cog.CredentialsProvider.CognitoIdentity.Default.PoolID
			c.AuthRegion = cog.CredentialsProvider.CognitoIdentity.Default.Region
		}
		if c.UserPoolID == "" {
			c.UserPoolID = cog.CognitoUserPool.Default.PoolID
			c.UserPoolClientID = cog.CognitoUserPool.Default.AppClientID
		}
	}
	if c.Bucket == "" {
		return nil, errors.New("no storage bucket (aws_user_files_s3_bucket or storage.plugins.awsS3StoragePlugin.bucket): add storage to the app with 'amplify add storage'")
	}
	return c, nil
}
