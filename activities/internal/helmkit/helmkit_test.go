package helmkit

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestSplitImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	repo, got, ok := SplitImage("localhost:5000/hello@" + digest)
	if !ok || repo != "localhost:5000/hello" || got != digest {
		t.Errorf("SplitImage by digest = %q, %q, %v", repo, got, ok)
	}
	for _, bad := range []string{"hello:latest", "@" + digest, "hello@sha256:abc", "hello@sha512:" + strings.Repeat("ab", 32)} {
		if _, _, ok := SplitImage(bad); ok {
			t.Errorf("SplitImage(%q) accepted an image that is not by digest", bad)
		}
	}
}

// TestContainerProblem covers which waiting reasons are permanent; the pods
// themselves are exercised on the real cluster by activities/helm and
// activities/promote.
func TestContainerProblem(t *testing.T) {
	waiting := func(reason, msg string, restarts int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "app", RestartCount: restarts,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
	}
	q := PodQuery{CrashLimit: 3}
	for _, tc := range []struct {
		cs        corev1.ContainerStatus
		want      string
		permanent bool
	}{
		{waiting("ContainerCreating", "", 0), "container app: ContainerCreating", false},
		{waiting("CrashLoopBackOff", "back-off", 2), "container app: CrashLoopBackOff (back-off), 2 restarts", false},
		{waiting("CrashLoopBackOff", "back-off", 3), "container app: CrashLoopBackOff (back-off), 3 restarts", true},
		{waiting("ErrImagePull", "manifest unknown", 0), "container app: ErrImagePull (manifest unknown)", true},
		{waiting("ImagePullBackOff", "i/o timeout", 0), "container app: ImagePullBackOff (i/o timeout)", false},
		{waiting("CreateContainerConfigError", "secret missing", 0), "container app: CreateContainerConfigError (secret missing)", true},
		{corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}, "container app: running, not ready", false},
		{corev1.ContainerStatus{Name: "app", Ready: true}, "", false},
	} {
		got, perm := containerProblem(context.Background(), nil, &corev1.Pod{}, tc.cs, q)
		if got != tc.want || perm != tc.permanent {
			t.Errorf("containerProblem(%+v) = %q, %v; want %q, %v", tc.cs.State, got, perm, tc.want, tc.permanent)
		}
	}
	cs := waiting("CrashLoopBackOff", "", 1)
	cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}
	if got, _ := containerProblem(context.Background(), nil, &corev1.Pod{}, cs, q); !strings.HasSuffix(got, ", 1 restarts, last exit code 3 (Error)") {
		t.Errorf("a restarted container's problem = %q, want its last exit code", got)
	}
}

func TestWithin(t *testing.T) {
	if got := Within(context.Background(), time.Minute); got != time.Minute {
		t.Errorf("Within without a deadline = %s, want 1m", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if got := Within(ctx, time.Minute); got > 15*time.Second || got < 10*time.Second {
		t.Errorf("Within a 20s deadline = %s, want about 15s", got)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if got := Within(ctx2, time.Minute); got != time.Second {
		t.Errorf("Within a 2s deadline = %s, want the 1s floor", got)
	}
}
