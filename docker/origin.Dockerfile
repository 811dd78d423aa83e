# cname-guard/origin - the demo origin (echoes host and account header as
# JSON), a static musl binary FROM scratch.
FROM scratch
COPY cname-guard-origin /usr/local/bin/cname-guard-origin
ENV CNAME_GUARD_ORIGIN_LISTEN=0.0.0.0:8082
USER 65532:65532
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/cname-guard-origin"]
