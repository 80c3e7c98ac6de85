# The Torpor worker image: both roles (control worker, node agent), selected by the container's args.
# Build from the repository root: docker build -f deploy/images/worker.Dockerfile -t torpor-worker .
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --no-save
COPY tsconfig.json tsconfig.build.json ./
COPY contract ./contract
COPY activities ./activities
COPY workflows ./workflows
COPY workers ./workers
COPY client ./client
COPY cli ./cli
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

# Debian trixie ships CRIU 4.1 (bookworm's 3.17 fails on current kernels); iptables for CRIU's network lock.
FROM debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends criu runc tar iptables util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENTRYPOINT ["node"]
CMD ["dist/workers/control.js"]
