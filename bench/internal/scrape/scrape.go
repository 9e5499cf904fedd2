// Package scrape reads a process's /metrics the way a Prometheus would, for the
// benchmarks that measure what serving metrics costs.
package scrape

import (
	"io"
	"net/http"
	"time"
)

// Every GETs url every interval and discards the body until stop is called;
// stop returns once the loop has ended. Errors are passed to onError, if set.
func Every(url string, interval time.Duration, onError func(error)) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			resp, err := http.Get(url)
			if err != nil {
				if onError != nil {
					onError(err)
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return func() { close(done); <-ended }
}
