# PostgreSQL for the store tests: they start their own server with initdb
# and pg_ctl from Debian's package, so only the package is needed.

PG_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: postgres-tools

postgres-tools:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing postgresql"; \
	  $(PG_SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(PG_SUDO) apt-get install -y -qq postgresql; \
	fi
	@command -v runuser >/dev/null || { echo "runuser (util-linux) is needed to run PostgreSQL unprivileged"; exit 1; }
