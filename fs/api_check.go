package fs

import fusefs "github.com/hanwen/go-fuse/v2/fs"

// The FUSE operations ampfs supports, one line each. Anything not listed
// gets go-fuse's default answer.
var (
	_ = (fusefs.NodeLookuper)((*Dir)(nil))
	_ = (fusefs.NodeGetattrer)((*Dir)(nil))
	_ = (fusefs.NodeSetattrer)((*Dir)(nil))
	_ = (fusefs.NodeReaddirer)((*Dir)(nil))
	_ = (fusefs.NodeMkdirer)((*Dir)(nil))
	_ = (fusefs.NodeRmdirer)((*Dir)(nil))
	_ = (fusefs.NodeUnlinker)((*Dir)(nil))
	_ = (fusefs.NodeCreater)((*Dir)(nil))
	_ = (fusefs.NodeRenamer)((*Dir)(nil))
	_ = (fusefs.NodeStatfser)((*Dir)(nil))
	_ = (fusefs.NodeFsyncer)((*Dir)(nil))
	_ = (fusefs.NodeSymlinker)((*Dir)(nil))
	_ = (fusefs.NodeGetxattrer)((*Dir)(nil))
	_ = (fusefs.NodeListxattrer)((*Dir)(nil))
	_ = (fusefs.NodeSetxattrer)((*Dir)(nil))
	_ = (fusefs.NodeRemovexattrer)((*Dir)(nil))

	_ = (fusefs.NodeGetattrer)((*File)(nil))
	_ = (fusefs.NodeSetattrer)((*File)(nil))
	_ = (fusefs.NodeOpener)((*File)(nil))
	_ = (fusefs.NodeGetxattrer)((*File)(nil))
	_ = (fusefs.NodeListxattrer)((*File)(nil))
	_ = (fusefs.NodeSetxattrer)((*File)(nil))
	_ = (fusefs.NodeRemovexattrer)((*File)(nil))
	_ = (fusefs.NodeReadlinker)((*File)(nil)) // symlinks are Files of type S_IFLNK

	_ = (fusefs.FileReader)((*Handle)(nil))
	_ = (fusefs.FileWriter)((*Handle)(nil))
	_ = (fusefs.FileAllocater)((*Handle)(nil))
	_ = (fusefs.FileFlusher)((*Handle)(nil))
	_ = (fusefs.FileFsyncer)((*Handle)(nil))
	_ = (fusefs.FileReleaser)((*Handle)(nil))
)
