package auth

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultFromEnvironment(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_PROFILE", "")
	s, err := Default(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Credentials.Retrieve(t.Context())
	if err != nil || c.AccessKeyID != "AKIDTEST" || c.SecretAccessKey != "secret" {
		t.Errorf("credentials = %v, %v", c.AccessKeyID, err)
	}
}

func TestDefaultFromProfile(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	os.WriteFile(creds, []byte("[ops]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s2\n"), 0o600)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	s, err := Default(t.Context(), Options{Profile: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Credentials.Retrieve(t.Context())
	if err != nil || c.AccessKeyID != "AKIDPROFILE" {
		t.Errorf("credentials = %v, %v", c.AccessKeyID, err)
	}
	if s.Source != "profile ops" {
		t.Errorf("source = %q", s.Source)
	}
	if _, err := Default(t.Context(), Options{Profile: "missing"}); err == nil {
		t.Error("a missing profile was accepted")
	}
}
