package integration

import (
	"regexp"
	"slices"
	"testing"
)

// TestUnexpectedLogLines checks the rule every mount's log is held to.
func TestUnexpectedLogLines(t *testing.T) {
	t.Parallel()
	log := `{"level":"info","message":"mounted"}
{"level":"warn","message":"slow"}
{"level":"error","op":"flush","key":"a","message":"upload failed"}
{"level":"error","op":"flush","key":"b","message":"upload failed"}
not json at all

panic: boom

goroutine 1 [running]:
main.main()
`
	got := unexpectedLogLines(log, []*regexp.Regexp{regexp.MustCompile(`"key":"a"`)})
	want := []string{
		`{"level":"error","op":"flush","key":"b","message":"upload failed"}`,
		"(not JSON) not json at all",
		"panic: boom",
	}
	if !slices.Equal(got, want) {
		t.Errorf("unexpectedLogLines = %q\nwant %q", got, want)
	}
	// A panic is never excused by expectErrors.
	if got := unexpectedLogLines("panic: boom\n", []*regexp.Regexp{regexp.MustCompile(`.`)}); len(got) != 1 {
		t.Errorf("an expected-errors pattern excused a panic: %q", got)
	}
}
