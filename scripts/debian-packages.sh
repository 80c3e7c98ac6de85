#!/usr/bin/env bash
# Sourced by setup.sh and install-criu.sh.

# Downloads Debian packages of SUITE with a private sources list and state (the system's apt
# configuration is never touched) and unpacks them into PREFIX.
unpack_debian_packages() {
  local suite=$1 prefix=$2 apt=$3
  shift 3
  rm -rf "$apt" "$prefix"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs" "$prefix"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$apt/sources.list"
  local opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >/dev/null
  (cd "$apt/debs" && apt-get "${opts[@]}" download "$@" >/dev/null)
  local deb
  for deb in "$apt/debs"/*.deb; do dpkg -x "$deb" "$prefix"; done
}
