// Command pause is the pod sandbox's first process for the local Kubernetes node: it
// sleeps until it is told to stop and reaps the children that the kernel hands it, as
// PID 1 of a pod must. conveyor dev up builds it statically and pushes it as a one-file
// image, so the node needs no image from outside.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
