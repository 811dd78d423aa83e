# cname-guard/lookup - the reference ownership lookup service, a static musl
# binary FROM scratch. The registry is mounted at /etc/cname-guard/.
FROM scratch
COPY cname-guard-lookup /usr/local/bin/cname-guard-lookup
ENV CNAME_GUARD_LISTEN=0.0.0.0:8081
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/cname-guard-lookup"]
CMD ["--registry", "/etc/cname-guard/registry.json"]
