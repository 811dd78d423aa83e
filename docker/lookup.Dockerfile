# cname-guard/lookup - the reference ownership lookup service, a static musl
# binary FROM scratch. The store is --database (a SQLite file in a volume,
# or postgres://); a registry JSON mounted at /etc/cname-guard/ is imported
# with --import.
FROM scratch
COPY cname-guard-lookup /usr/local/bin/cname-guard-lookup
ENV CNAME_GUARD_LISTEN=0.0.0.0:8081
ENV CNAME_GUARD_DATABASE=sqlite:/var/lib/cname-guard/store.db
USER 65532:65532
EXPOSE 8081 8091
ENTRYPOINT ["/usr/local/bin/cname-guard-lookup"]
CMD ["serve", "--import", "/etc/cname-guard/registry.json"]
