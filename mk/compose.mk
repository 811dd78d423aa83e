# The stack in Docker compose (envoy/compose/docker-compose.yaml), with images
# built locally FROM scratch: no registry needed. See docs/compose.md.
#
#   make compose-images   the static services, the .wasm, and the images (envoy, lookup, origin, plugin, dns, postgres, pebble)
#   make compose-up       images, `up -d`, wait until the edge answers
#   make compose-down     down -v --remove-orphans (project cname-guard only)
#   make compose-test     up, the end-to-end assertions, always down

MUSL_TARGET := x86_64-unknown-linux-musl
COMPOSE_TEST := scripts/compose-test.sh

.PHONY: compose-images compose-services compose-up compose-down compose-test

.tools/$(MUSL_TARGET).stamp:
	rustup target add $(MUSL_TARGET)
	@mkdir -p .tools && touch $@

# The lookup service and the origin as static musl binaries. Pure Rust links
# with the toolchain's own musl; musl-tools only if a C dependency needs musl-gcc.
compose-services: .tools/$(MUSL_TARGET).stamp
	@$(CARGO) build --release --target $(MUSL_TARGET) -p cname-guard-lookup || { \
	  command -v musl-gcc >/dev/null && exit 1; \
	  echo "compose-services: retrying with musl-tools (musl-gcc)"; \
	  { apt-get update -qq || true; } && apt-get install -y musl-tools && $(CARGO) build --release --target $(MUSL_TARGET) -p cname-guard-lookup; }

# With ENVOY_IMAGE set to another image (envoyproxy/envoy:v1.40.0 from a
# registry), the local Envoy image is not built.
LOCAL_ENVOY_IMAGE := cname-guard/envoy:$(ENVOY_VERSION)
compose-images: deps wasm compose-services postgres-tools
	@bash docker/build-images.sh $(if $(filter-out $(LOCAL_ENVOY_IMAGE),$(ENVOY_IMAGE)),lookup origin plugin dns postgres pebble)

compose-up: compose-images
	@bash $(COMPOSE_TEST) up
	@echo "edges: http://127.0.0.1:$${CNAME_GUARD_EDGE_PORT:-18000} http://127.0.0.1:$${CNAME_GUARD_EDGE2_PORT:-18001}  admin: http://127.0.0.1:$${CNAME_GUARD_ADMIN_PORT:-18901} http://127.0.0.1:$${CNAME_GUARD_ADMIN2_PORT:-18902}"
	@echo "management API: http://127.0.0.1:$${CNAME_GUARD_LOOKUP1_ADMIN_PORT:-18091} http://127.0.0.1:$${CNAME_GUARD_LOOKUP2_ADMIN_PORT:-18092}  (demo admin token: envoy/compose/admin-token)"
	@echo "metrics (Prometheus): http://127.0.0.1:$${CNAME_GUARD_LOOKUP1_PORT:-18081}/metrics http://127.0.0.1:$${CNAME_GUARD_LOOKUP2_PORT:-18082}/metrics"
	@echo "try:  curl -i -H 'Host: custom.myclientsite.com' http://127.0.0.1:$${CNAME_GUARD_EDGE_PORT:-18000}/"

compose-down:
	@bash $(COMPOSE_TEST) down

compose-test: compose-images
	@bash $(COMPOSE_TEST) test
