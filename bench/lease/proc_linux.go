package main

import "syscall"

// childAttr makes the kernel kill a child when the thread that started it
// (and so, in practice, the bench) dies, so a SIGKILLed bench leaves no hog
// spinning; each child also bounds its own lifetime.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
