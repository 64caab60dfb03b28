//go:build !linux

package cache

// newBlockBuf allocates a block's buffer (see blockmem_linux.go).
func newBlockBuf(n int64) []byte { return make([]byte, n) }
