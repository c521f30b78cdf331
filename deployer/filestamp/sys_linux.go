package filestamp

import (
	"io/fs"
	"syscall"
)

// sysMeta is the inode, device and change time of fi, which replacing or touching a file moves.
func sysMeta(fi fs.FileInfo) (ino, dev uint64, ctime int64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return st.Ino, st.Dev, st.Ctim.Sec*1e9 + st.Ctim.Nsec
}
