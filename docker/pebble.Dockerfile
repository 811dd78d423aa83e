# cname-guard/pebble - Debian's Pebble, the ACME test CA, with the glibc
# libraries it links and the dynamic loader, FROM scratch: the compose
# stack's certificates (docs/compose.md). Its directory's TLS certificate is
# made by docker/build-images.sh; the lookup replicas trust its root.
FROM scratch
COPY rootfs/ /
USER 65532:65532
# No random validation delays; no nonce rejection (a demo, not a conformance test).
ENV PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0
EXPOSE 14000 15000
ENTRYPOINT ["/usr/bin/pebble", "-config", "/etc/pebble/pebble.json", "-strict=false"]
