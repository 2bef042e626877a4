//go:build !linux

package main

import "syscall"

// childAttr: without Pdeathsig, a child outlives a killed bench by at most
// its own bound (-hog-for, the renewers' window plus margins).
func childAttr() *syscall.SysProcAttr { return nil }
