package devstack

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"time"
)

const (
	// registryAddr is the registry as users reach it: nginx in front of distribution,
	// anonymous pulls, pushes only with credentials (as Wikimedia runs it).
	registryAddr        = "localhost:5000"
	registryBackendAddr = "127.0.0.1:5001"
	registryUser        = "conveyor"
)

// registryComponent is Debian's docker-registry (Docker distribution 2.8).
func registryComponent() component {
	return component{
		name:    "registry",
		process: true,
		address: func(*stack) string { return registryBackendAddr + " (backend)" },
		timeout: 30 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := s.mkdirs("registry/data"); err != nil {
				return nil, err
			}
			conf := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  headers:
    X-Content-Type-Options: [nosniff]
`, s.path("registry", "data"), registryBackendAddr)
			if err := writeFile(s.path("registry", "config.yml"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "registry", Bin: "/usr/bin/docker-registry", Args: []string{"serve", s.path("registry", "config.yml")}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return httpOK(ctx, nil, "http://"+registryBackendAddr+"/v2/")
		},
	}
}

// registryProxyComponent is nginx in front of the registry.
func registryProxyComponent() component {
	return component{
		name:    "registry-proxy",
		process: true,
		address: func(*stack) string { return registryAddr + " (pull anonymous, push as " + registryUser + ")" },
		timeout: 30 * time.Second,
		prepare: func(ctx context.Context, s *stack) (*process, error) {
			if err := s.mkdirs("registry/nginx/tmp"); err != nil {
				return nil, err
			}
			if err := writeFile(s.path("registry", "nginx", "htpasswd"), htpasswdLine(registryUser, s.secret("registry-password")), 0o600); err != nil {
				return nil, err
			}
			conf := fmt.Sprintf(`# Written by conveyor dev up.
user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 512; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  server {
    listen 127.0.0.1:5000;
    client_max_body_size 0;
    chunked_transfer_encoding on;
    location /v2/ {
      limit_except GET HEAD OPTIONS {
        auth_basic "conveyor registry";
        auth_basic_user_file %[1]s/htpasswd;
      }
      proxy_pass http://%[2]s;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 900;
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
`, s.path("registry", "nginx"), registryBackendAddr)
			if err := writeFile(s.path("registry", "nginx", "nginx.conf"), conf, 0o644); err != nil {
				return nil, err
			}
			return &process{Name: "registry-proxy", Bin: "/usr/sbin/nginx",
				Args: []string{"-p", s.path("registry", "nginx"), "-c", s.path("registry", "nginx", "nginx.conf"), "-g", "daemon off;"}}, nil
		},
		ready: func(ctx context.Context, s *stack) error {
			return httpOK(ctx, nil, "http://"+registryAddr+"/v2/")
		},
	}
}

// htpasswdLine is an nginx auth_basic entry using the salted SHA-1 scheme nginx reads
// natively ({SSHA}), so no Apache tools are needed.
func htpasswdLine(user, password string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	sum := sha1.Sum(append([]byte(password), salt...))
	return user + ":{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...)) + "\n"
}
