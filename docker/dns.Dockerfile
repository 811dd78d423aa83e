# cname-guard/dns - BIND 9's named serving the demo zones of envoy/dns/,
# authoritative only, on port 5353, with the glibc libraries it links and the
# dynamic loader, FROM scratch. Built offline by docker/build-images.sh from
# a context it assembles under target/docker/dns/.
FROM scratch
COPY rootfs/ /
USER 65532:65532
EXPOSE 5353/udp 5353/tcp
ENTRYPOINT ["/usr/sbin/named", "-g", "-c", "/etc/named/named.conf"]
