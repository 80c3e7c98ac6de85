# The Torpor worker image: both roles (control worker, node agent), selected by the container's args.
# Build from the repository root: docker build -f deploy/images/worker.Dockerfile -t torpor-worker .
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The npm registry (a mirror where the public one is not reachable; scripts/build-images.sh passes the
# host's), and optionally CA certificates to trust beyond Node's (a TLS-inspecting proxy):
#   docker build --build-arg NPM_REGISTRY=URL --secret id=ca-certs,src=/etc/ssl/certs/ca-certificates.crt
ARG NPM_REGISTRY=https://registry.npmjs.org/
RUN --mount=type=secret,id=ca-certs,target=/etc/ssl/build-ca-certs.pem \
    NODE_EXTRA_CA_CERTS=/etc/ssl/build-ca-certs.pem npm ci --no-audit --no-fund --registry "$NPM_REGISTRY"
COPY tsconfig.json tsconfig.build.json ./
COPY contract ./contract
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
COPY client ./client
COPY cli ./cli
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

# CRIU 4.2 (4.1 cannot dump a process holding an inet socket on Linux 6.18; only Debian sid ships 4.2),
# as scripts/setup.sh installs it: /opt/torpor/bin/criu is CRIU 4.2.1 built from sid's source with our
# parallel page restore and write (tools/criu-parallel/build.sh) against trixie's libraries, which it finds in
# /opt/torpor/criu-parallel/deps through its RPATH; /opt/torpor/bin/criu-stock is sid's own, unpacked
# with its libraries. And the launcher that starts local workloads with io_uring refused (CRIU cannot
# checkpoint io_uring).
# apt settings the build machine needs (a mirror, a proxy; optional): docker build --secret id=apt-conf,src=FILE
FROM debian:trixie-slim AS node-tools
RUN --mount=type=secret,id=apt-conf,target=/etc/apt/apt.conf.d/90build \
    apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make pkgconf patch curl xz-utils \
      ca-certificates debian-archive-keyring \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/versions.sh scripts/debian-packages.sh scripts/install-criu.sh /src/scripts/
COPY tools/no-io-uring/no-io-uring.c /src/
RUN --mount=type=secret,id=apt-conf,target=/etc/apt/apt.conf.d/90build \
    bash /src/scripts/install-criu.sh /opt/torpor \
 && rm -rf /opt/torpor/apt \
 && gcc -O2 -Wall -Werror -static -o /opt/torpor/bin/torpor-no-io-uring /src/no-io-uring.c
COPY tools/criu-parallel/build.sh tools/criu-parallel/parallel-page-restore.patch tools/criu-parallel/parallel-page-write.patch \
     /src/tools/criu-parallel/
# Only the shared libraries of the build's deps stay (headers, compilers and the sources go); C++
# protobuf served only protoc.
RUN --mount=type=secret,id=apt-conf,target=/etc/apt/apt.conf.d/90build \
    TORPOR_CRIU_DEPS_SUITE=trixie bash /src/tools/criu-parallel/build.sh /opt/torpor \
 && cd /opt/torpor/criu-parallel && rm -rf src apt-src apt-deps \
 && find deps ! -type d ! -name 'lib*.so*' -delete \
 && rm -f deps/usr/lib/x86_64-linux-gnu/libprotobuf.so* deps/usr/lib/x86_64-linux-gnu/libprotobuf-lite.so* \
      deps/usr/lib/x86_64-linux-gnu/libprotoc.so* \
 && find deps -depth -type d -empty -delete \
 && ln -s criu-parallel /opt/torpor/bin/criu \
 && /opt/torpor/bin/criu --version | grep -q 'GitID: .*parallel-page-restore.parallel-page-write'

# iptables for CRIU's network lock where the node uses it (without it the agent picks nftables).
FROM debian:trixie-slim
RUN --mount=type=secret,id=apt-conf,target=/etc/apt/apt.conf.d/90build \
    apt-get update \
 && apt-get install -y --no-install-recommends runc tar iptables util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=node-tools /opt/torpor /opt/torpor
ENV PATH=/opt/torpor/bin:$PATH
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENTRYPOINT ["node"]
CMD ["dist/workers/control.js"]
