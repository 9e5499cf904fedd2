package devstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func (s *stack) containerdSocket() string { return s.path("containerd", "containerd.sock") }

// nodeNetworkComponent gives the node its address: a bridge of the project's own
// carrying nodeIP, created once and removed by Down only if Up created it.
func nodeNetworkComponent() component {
	marker := func(s *stack) string { return s.path("run", "node-bridge.created") }
	return component{
		name:    "node-network",
		address: func(*stack) string { return nodeIP + " on " + nodeBridge },
		timeout: 10 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := exec.CommandContext(ctx, "ip", "link", "show", nodeBridge).Run(); err != nil {
				if err := run(ctx, "ip", "link", "add", nodeBridge, "type", "bridge"); err != nil {
					return nil, err
				}
				if err := writeFile(marker(s), "", 0o644); err != nil {
					return nil, err
				}
			}
			if !hasAddr(ctx, nodeBridge, nodeIP) {
				if err := run(ctx, "ip", "addr", "add", nodeIP+"/32", "dev", nodeBridge); err != nil {
					return nil, err
				}
			}
			if err := run(ctx, "ip", "link", "set", nodeBridge, "up"); err != nil {
				return nil, err
			}
			// Cluster addresses never take the default route: a ClusterIP that
			// kube-proxy has not (or no longer) translated, or a pod address not on
			// the node, ends on the project's own bridge instead of leaving the machine.
			for _, cidr := range []string{serviceCIDR, clusterCIDR} {
				if err := run(ctx, "ip", "route", "replace", cidr, "dev", nodeBridge); err != nil {
					return nil, err
				}
			}
			return nil, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			if !hasAddr(ctx, nodeBridge, nodeIP) {
				return fmt.Errorf("%s has no address %s", nodeBridge, nodeIP)
			}
			out, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "dev", nodeBridge).Output()
			if err != nil {
				return err
			}
			for _, cidr := range []string{serviceCIDR, clusterCIDR} {
				if !strings.Contains(string(out), cidr) {
					return fmt.Errorf("no route for %s on %s", cidr, nodeBridge)
				}
			}
			return nil
		},
		cleanup: func(s *stack) error {
			if _, err := os.Stat(marker(s)); err != nil {
				return nil
			}
			_ = run(context.Background(), "ip", "link", "del", nodeBridge)
			return os.Remove(marker(s))
		},
	}
}

func hasAddr(ctx context.Context, dev, ip string) bool {
	out, err := exec.CommandContext(ctx, "ip", "-o", "-4", "addr", "show", "dev", dev).Output()
	return err == nil && strings.Contains(string(out), " "+ip+"/")
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// containerdComponent is Debian's containerd with the CRI plugin, configured for this
// sandbox (restrict_oom_score_adj), the local pause image, the project's CNI network
// and the local registry over plain HTTP.
func containerdComponent() component {
	return component{
		name:    "containerd",
		process: true,
		address: func(s *stack) string { return "unix://" + s.containerdSocket() },
		timeout: 60 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if len(s.containerdSocket()) > 100 {
				return nil, fmt.Errorf("socket path %s is too long for a unix socket: use a shorter --state-dir", s.containerdSocket())
			}
			if err := s.mkdirs("containerd/root", "containerd/state", "cni/net.d", "cni/ipam"); err != nil {
				return nil, err
			}
			cni := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "conveyor",
  "plugins": [
    {"type": "bridge", "bridge": "conveyor-cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, podCIDR, s.path("cni", "ipam"))
			if err := writeFile(s.path("cni", "net.d", "10-conveyor.conflist"), cni, 0o644); err != nil {
				return nil, err
			}
			conf := fmt.Sprintf(`# Written by conveyor dev up.
version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%q]
    endpoint = ["http://%s"]
`, s.path("containerd", "root"), s.path("containerd", "state"), s.containerdSocket(), s.path("containerd", "opt"),
				PauseImage, s.path("cni", "net.d"), registryAddr, registryAddr)
			if err := writeFile(s.path("containerd", "config.toml"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "containerd", Bin: "/usr/bin/containerd", Args: []string{"--config", s.path("containerd", "config.toml")}}, nil
		},
		ready:      func(ctx context.Context, s *stack) error { return unixOpen(ctx, s.containerdSocket()) },
		beforeStop: func(ctx context.Context, s *stack) error { return s.killShims() },
		cleanup:    func(s *stack) error { return s.cleanupNode() },
	}
}

// killShims ends the runc shims of this stack's containerd and the containers they
// run: stopping containerd alone would leave every pod running.
func (s *stack) killShims() error {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var shims []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, s.containerdSocket()) {
			shims = append(shims, pid)
		}
	}
	for _, shim := range shims {
		for _, child := range children(shim) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(shim, syscall.SIGKILL)
	}
	return nil
}

// children lists the direct children of pid.
func children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// cleanupNode removes what the node's pods leave behind when their processes are
// killed: mounts under the node's state, their network namespaces, address leases.
func (s *stack) cleanupNode() error {
	var errs []error
	for _, dir := range []string{s.path("containerd"), s.path("kubelet")} {
		if err := unmountUnder(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if matches, _ := filepath.Glob("/var/run/netns/cni-*"); len(matches) > 0 {
		for _, ns := range matches {
			out, err := exec.Command("ip", "netns", "exec", filepath.Base(ns), "ip", "-o", "-4", "addr").Output()
			if err == nil && strings.Contains(string(out), " "+strings.TrimSuffix(podCIDR, "0/24")) {
				_ = run(context.Background(), "ip", "netns", "del", filepath.Base(ns))
			}
		}
	}
	_ = exec.Command("ip", "link", "del", "conveyor-cni0").Run()
	if err := os.RemoveAll(s.path("cni", "ipam")); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

func kubeletComponent() component {
	return component{
		name:    "kubelet",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return nodeIP + ":10250" },
		timeout: 90 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := s.mkdirs("kubelet/root", "kubelet/pki", "kubelet/pod-logs"); err != nil {
				return nil, err
			}
			if err := writeFile(s.path("kubelet", "resolv.conf"), "", 0o644); err != nil {
				return nil, err
			}
			conf := fmt.Sprintf(`# Written by conveyor dev up.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://%s
podCIDR: %s
clusterDomain: cluster.local
resolvConf: %s
podLogsDir: %s
serializeImagePulls: false
maxPods: 60
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
`, nodeIP, s.containerdSocket(), podCIDR, s.path("kubelet", "resolv.conf"), s.path("kubelet", "pod-logs"))
			if err := writeFile(s.path("kubelet", "config.yaml"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "kubelet", Bin: s.tool("kubernetes", "kubelet"), Args: []string{
				"--config", s.path("kubelet", "config.yaml"),
				"--kubeconfig", s.kubeconfigPath("kubelet"),
				"--hostname-override", nodeName, "--node-ip", nodeIP,
				"--root-dir", s.path("kubelet", "root"), "--cert-dir", s.path("kubelet", "pki"),
			}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return httpOK(ctx, nil, "http://127.0.0.1:10248/healthz") },
	}
}

func kubeProxyComponent() component {
	return component{
		name:    "kube-proxy",
		tool:    "kubernetes",
		process: true,
		address: func(*stack) string { return "iptables, ClusterIPs " + serviceCIDR },
		timeout: 90 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			conf := fmt.Sprintf(`# Written by conveyor dev up.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [%s/32]
conntrack:
  maxPerCore: 0
  min: 0
`, s.kubeconfigPath("proxy"), clusterCIDR, nodeName, nodeIP)
			if err := writeFile(s.path("kubernetes", "kube-proxy.yaml"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "kube-proxy", Bin: s.tool("kubernetes", "kube-proxy"), Args: []string{"--config", s.path("kubernetes", "kube-proxy.yaml")}}, nil
		},
		ready: func(ctx context.Context, s *stack) error { return httpOK(ctx, nil, "http://127.0.0.1:10256/healthz") },
		cleanup: func(s *stack) error {
			if out, err := exec.Command(s.tool("kubernetes", "kube-proxy"), "--cleanup").CombinedOutput(); err != nil {
				return fmt.Errorf("removing kube-proxy's iptables rules: %v: %s", err, out)
			}
			return nil
		},
	}
}
