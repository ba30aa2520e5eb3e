# raftkv container image: the static raftkvd and raftkvctl on an empty base.
#
# Build it with scripts/docker-build.sh, which compiles both binaries first
# (CGO_ENABLED=0) and builds from a context holding only them and this file:
# no base image is pulled and nothing is compiled inside Docker.
#
#   scripts/docker-build.sh                  -> raftkv:dev
#   docker run -v raftkv-data:/data -p 127.0.0.1:7001:7001 raftkv:dev --raft-advertise=HOST:7002
#
# The process runs as uid/gid 65532 (no passwd file needed); /data, the
# data volume, belongs to that user, so a fresh named volume inherits it.
FROM scratch

COPY raftkvd raftkvctl /usr/local/bin/
COPY --chown=65532:65532 data /data

USER 65532:65532
WORKDIR /data
VOLUME ["/data"]

# Every raftkvd flag can be set as RAFTKV_<FLAG>; command-line flags win.
# Listen on all interfaces inside the container; --raft-advertise (and
# usually --grpc-advertise) must name an address peers can reach.
ENV PATH=/usr/local/bin \
    RAFTKV_DATA_DIR=/data \
    RAFTKV_GRPC_ADDR=0.0.0.0:7001 \
    RAFTKV_RAFT_ADDR=0.0.0.0:7002 \
    RAFTKV_HTTP_ADDR=0.0.0.0:7003 \
    RAFTKV_LOG_FORMAT=json \
    RAFTKV_ENDPOINTS=127.0.0.1:7001

# 7001 gRPC (clients, admin, forwarding), 7002 raft peers, 7003 HTTP
# (/healthz, /readyz, /metrics), 7946 gossip (TCP and UDP).
EXPOSE 7001 7002 7003 7946 7946/udp

# No shell in the image: raftkvd itself asks its /readyz (at
# $RAFTKV_HTTP_ADDR, so set --http-addr through that variable if you move it).
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/raftkvd", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/raftkvd"]
