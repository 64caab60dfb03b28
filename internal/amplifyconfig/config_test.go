package amplifyconfig

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		file                      string
		gen                       int
		bucket, region, identPool string
		userPool, client          string
		paths                     int
	}{
		{"amplify_outputs.json", 2, "amplify-photoapp-main-photosbucket1a2b3c4d-x1y2z3", "us-east-1",
			"us-east-1:0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", "us-east-1_AbCdEfGhI", "3example0client0id0abcdefg", 6},
		{"amplifyconfiguration.json", 1, "notesapp-storage-0a1b2c3d162412-dev", "eu-west-1",
			"eu-west-1:5f2c0d9e-1b3a-4c5d-8e7f-9a0b1c2d3e4f", "eu-west-1_QwErTyUiO", "1abcdefghij2klmnop3qrstuv4", 0},
		{"amplifyconfiguration-mobile.json", 1, "mobileapp-files-1a2b3c-dev", "us-east-2",
			"us-east-2:6c1e2b3a-4d5f-4a6b-9c8d-7e6f5a4b3c2d", "us-east-2_ZxCvBnMaS", "5exampleappclientid0000000", 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.Gen != tt.gen || c.Bucket != tt.bucket || c.Region != tt.region || c.IdentityPoolID != tt.identPool ||
				c.UserPoolID != tt.userPool || c.UserPoolClientID != tt.client || len(c.Paths) != tt.paths {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		`not json`:                       "not JSON",
		`{"version": "1.3", "auth": {}}`: "no storage",
		`{"aws_project_region": "x"}`:    "no storage bucket",
	}
	for in, want := range tests {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s) = %v, want %q", in, err, want)
		}
	}
}
