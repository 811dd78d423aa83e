# cname-guard/postgres - PostgreSQL from Debian's postgresql package, with the
# glibc libraries it links, its share dir and UTC's tz data, FROM scratch.
# The data directory was initialised at build time by initdb (run as an
# unprivileged user) with the role and database cname_guard (a demo
# password: see docs/compose.md). Built offline by docker/build-images.sh
# from a context it assembles under target/docker/postgres/.
FROM scratch
COPY rootfs/ /
# PostgreSQL refuses a data directory it does not own, or one not 0700
# (kept: only the contents of pg/ are copied, data/ with its mode).
COPY --chown=65532:65532 pg/ /var/lib/postgresql/
USER 65532:65532
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres", "-D", "/var/lib/postgresql/data"]
