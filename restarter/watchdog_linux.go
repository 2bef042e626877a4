package restarter

import (
	"os"
	"syscall"
	"time"
	"unsafe"
)

// wdiocGetTimeout is WDIOC_GETTIMEOUT, _IOR('W', 7, int)
// (include/uapi/linux/watchdog.h).
const wdiocGetTimeout = 0x80045707

// deviceTimeout reads the watchdog's timeout; a file that is not a watchdog
// answers ENOTTY.
func deviceTimeout(f *os.File) (time.Duration, error) {
	var secs int32
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var errno syscall.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, wdiocGetTimeout, uintptr(unsafe.Pointer(&secs)))
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, &os.SyscallError{Syscall: "ioctl WDIOC_GETTIMEOUT", Err: errno}
	}
	return time.Duration(secs) * time.Second, nil
}
