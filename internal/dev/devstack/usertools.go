package devstack

// The Debian busybox-static applets have no user management, and Blubber's build
// phases create users with groupadd/useradd and look them up with getent. The base
// image carries these small POSIX sh stand-ins that take the options Blubber uses.

const groupaddScript = `#!/bin/sh
# groupadd [-o] [-r] [-g|--gid GID] NAME  (conveyor base image stand-in)
gid=
while [ $# -gt 1 ]; do
  case "$1" in
    -g|--gid) gid=$2; shift 2 ;;
    -o|--non-unique|-r|--system|-f|--force) shift ;;
    *) echo "groupadd: unsupported option $1" >&2; exit 2 ;;
  esac
done
name=$1
[ -n "$name" ] || { echo "usage: groupadd [-g GID] NAME" >&2; exit 2; }
if grep -q "^$name:" /etc/group; then echo "groupadd: group '$name' already exists" >&2; exit 9; fi
if [ -z "$gid" ]; then gid=$(awk -F: 'BEGIN{m=999} $3>m && $3<60000 {m=$3} END{print m+1}' /etc/group); fi
echo "$name:x:$gid:" >> /etc/group
`

const useraddScript = `#!/bin/sh
# useradd [-o] [-m] [-r] [-d HOME] [-g GROUP] [-u UID] [-s SHELL] NAME  (conveyor base image stand-in)
uid= group= home= shell=/bin/sh mkhome=
while [ $# -gt 1 ]; do
  case "$1" in
    -u|--uid) uid=$2; shift 2 ;;
    -g|--gid) group=$2; shift 2 ;;
    -d|--home-dir) home=$2; shift 2 ;;
    -s|--shell) shell=$2; shift 2 ;;
    -m|--create-home) mkhome=1; shift ;;
    -o|--non-unique|-r|--system|-M|--no-create-home|-N|--no-user-group|-l|--no-log-init) shift ;;
    *) echo "useradd: unsupported option $1" >&2; exit 2 ;;
  esac
done
name=$1
[ -n "$name" ] || { echo "usage: useradd [-u UID] [-g GROUP] [-d HOME] [-m] NAME" >&2; exit 2; }
if grep -q "^$name:" /etc/passwd; then echo "useradd: user '$name' already exists" >&2; exit 9; fi
[ -n "$uid" ] || uid=$(awk -F: 'BEGIN{m=999} $3>m && $3<60000 {m=$3} END{print m+1}' /etc/passwd)
[ -n "$home" ] || home=/home/$name
case "$group" in
  "") gid=$(awk -F: -v n="$name" '$1==n {print $3}' /etc/group)
      if [ -z "$gid" ]; then gid=$uid; echo "$name:x:$gid:" >> /etc/group; fi ;;
  *[!0-9]*) gid=$(awk -F: -v n="$group" '$1==n {print $3}' /etc/group)
      [ -n "$gid" ] || { echo "useradd: group '$group' does not exist" >&2; exit 6; } ;;
  *) gid=$group ;;
esac
echo "$name:x:$uid:$gid::$home:$shell" >> /etc/passwd
if [ -n "$mkhome" ]; then mkdir -p "$home" && chown "$uid:$gid" "$home"; fi
`

const getentScript = `#!/bin/sh
# getent passwd|group [KEY...]  (conveyor base image stand-in: files only)
db=$1; shift
case "$db" in passwd|group) ;; *) echo "getent: unknown database $db" >&2; exit 1 ;; esac
[ $# -gt 0 ] || { cat /etc/$db; exit 0; }
rc=0
for key in "$@"; do
  awk -F: -v k="$key" '$1==k || $3==k {print; found=1; exit} END{exit !found}' /etc/$db || rc=2
done
exit $rc
`
