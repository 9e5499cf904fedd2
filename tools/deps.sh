#!/usr/bin/env bash
# Installs the Debian packages the local stack runs (idempotent: only what is missing).
# Package installs must not start services on their default ports: the stack runs its
# own instances, so a policy-rc.d refuses service starts while apt runs.
set -euo pipefail
pkgs=(runc containerd containernetworking-plugins iptables conntrack docker-registry
      nginx-light busybox-static iproute2 git ca-certificates debootstrap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
created=
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created=1; fi
trap '[ -n "$created" ] && rm -f "$policy"' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed"
