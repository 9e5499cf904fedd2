#!/usr/bin/env bash
# Installs the Debian packages the local stack runs (idempotent: only what is missing).
# Package installs must not start services on their default ports: the stack runs its
# own instances, so a policy-rc.d refuses service starts while apt runs.
set -euo pipefail
pkgs=(runc containerd containernetworking-plugins iptables conntrack docker-registry
      nginx-light busybox-static iproute2 git ca-certificates debootstrap
      chromium)  # chromium: the browser test of the Temporal UI (tools/playwright.sh drives it)
# The production Temporal's database (`conveyor dev up --temporal postgres`); the
# stack runs its own cluster in its state directory, never the package's.
pkgs+=(postgresql-15)
# Prometheus scrapes the workers' and the receiver's /metrics on the stack, and its
# promtool checks and tests conveyor's alert rules (deploy/prometheus); the stack
# runs its own server in its state directory, never the package's service.
pkgs+=(prometheus)
# The optional Docker engine (`conveyor dev up --with docker`) and Debian's
# docker-compose 1.29, which run docker-compose.yml (integration/compose_test.go); the
# stack starts its own dockerd in its state directory, never the package's service.
pkgs+=(docker.io docker-compose)
# The optional two-region OpenStack (`conveyor dev up --with openstack`, which the
# migration's integration tests use): the library packages, not the service packages,
# which would pull debconf, dbconfig-common and init scripts.
pkgs+=(python3-keystone python3-glance python3-nova python3-placement python3-neutron
       python3-openstackclient python3-pymysql uwsgi-core uwsgi-plugin-python3
       rabbitmq-server mariadb-server)
# The services' paste ini files live in the *-common packages: only their files are
# taken (apt-get download + dpkg-deb -x), into $paste (internal/dev/devstack/openstack/rig.go).
paste=/usr/local/share/conveyor/openstack
pastepkgs=(nova-common glance-common neutron-common)
pastefiles=(nova/api-paste.ini glance/glance-api-paste.ini neutron/api-paste.ini)
pastedone() { for f in "${pastefiles[@]}"; do [ -f "$paste/$f" ] || return 1; done; }
missing=()
installed=" $(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null | awk '/install ok installed/{print $1}' | tr '\n' ' ' || true) "
for p in "${pkgs[@]}"; do
  [[ "$installed" == *" $p "* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && pastedone && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] || echo "deps: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
created=
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; fi
trap '[ -n "$created" ] && rm -f "$policy"' EXIT
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! pastedone; then
  echo "deps: extracting the paste ini files of ${pastepkgs[*]} into $paste"
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true # apt-get download fetches as _apt
  (cd "$tmp" && apt-get download -qq "${pastepkgs[@]}" >/dev/null)
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  rm -rf "$paste"
  for f in "${pastefiles[@]}"; do
    install -D -m 644 "$tmp/root/usr/share/${f%%/*}-common/${f#*/}" "$paste/$f"
  done
  rm -rf "$tmp"
fi
echo "deps: installed"
