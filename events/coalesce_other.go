//go:build !linux

package events

import "net"

// setLowWater is not attempted outside Linux: reads are spaced instead (see
// CoalesceReads).
func setLowWater(net.Conn, int) bool { return false }
