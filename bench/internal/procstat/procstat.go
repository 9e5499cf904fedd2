// Package procstat reads what the benchmarks report about a process from /proc:
// its resident set size now and at its peak, and the CPU time it has used. Pid 0
// means this process.
package procstat

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Memory is a process's resident set size, in bytes.
type Memory struct {
	// RSS is the resident set size now (VmRSS).
	RSS int64
	// Peak is the high-water resident set size since the process started (VmHWM).
	Peak int64
}

// ReadMemory reads the VmRSS and VmHWM lines of /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	path := statusPath(pid)
	f, err := os.Open(path)
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for key, dst := range map[string]*int64{"VmRSS:": &m.RSS, "VmHWM:": &m.Peak} {
			v, ok := strings.CutPrefix(sc.Text(), key)
			if !ok {
				continue
			}
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return Memory{}, fmt.Errorf("%s: %s: %w", path, key, err)
			}
			*dst = kb * 1024
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, err
	}
	if found != 2 {
		return Memory{}, fmt.Errorf("%s: no VmRSS and VmHWM lines (not Linux?)", path)
	}
	return m, nil
}

// PeakRSS is the process's high-water resident set size (VmHWM), in bytes.
func PeakRSS(pid int) (int64, error) {
	m, err := ReadMemory(pid)
	return m.Peak, err
}

func statusPath(pid int) string {
	if pid == 0 {
		return "/proc/self/status"
	}
	return fmt.Sprintf("/proc/%d/status", pid)
}

// CPUTime is the user plus system CPU time a process has used.
func CPUTime(pid int) (time.Duration, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, err
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the whole line, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}
