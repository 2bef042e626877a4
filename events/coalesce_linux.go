package events

import (
	"net"
	"syscall"
)

// setLowWater asks the kernel not to report c readable until n bytes are
// queued (SO_RCVLOWAT; since Linux 4.19 TCP does not even wake a waiter
// before that). A read still returns what is queued below the mark.
func setLowWater(c net.Conn, n int) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	}); err != nil {
		return false
	}
	return serr == nil
}
