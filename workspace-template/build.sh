#!/usr/bin/env bash
# Build the agent image molecule/workspace-agent from this repository without
# pulling anything: compile a static binary, stage it with the host's CA
# bundle in a temporary context, and build FROM scratch.
#
#   workspace-template/build.sh [tag]     (default: molecule/workspace-agent:latest)
#
# Env: GO (default: go), DOCKER (default: docker), VERSION (default: git describe).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
tag="${1:-molecule/workspace-agent:latest}"
go="${GO:-go}"
docker="${DOCKER:-docker}"
ca="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
version="${VERSION:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo dev)}"

if [[ ! -r "$ca" ]]; then
  echo "build.sh: CA bundle $ca not readable (install ca-certificates or set CA_BUNDLE)" >&2
  exit 1
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT

(
  cd "$repo"
  CGO_ENABLED=0 "$go" build -trimpath \
    -ldflags="-s -w -X main.version=${version}" \
    -o "$ctx/molecule-agent" ./cmd/molecule-agent
)
cp "$ca" "$ctx/ca-certificates.crt"
cp "$here/Dockerfile" "$ctx/Dockerfile"
# Directories the non-root agent (uid 10001) needs: its home (.gitconfig), a
# temp dir, and the mount points /configs and /workspace. Docker seeds an
# empty named volume from the image directory it is mounted on, ownership
# included, so fresh volumes start out writable by the agent.
mkdir -p "$ctx/rootfs/home/agent" "$ctx/rootfs/tmp" "$ctx/rootfs/configs" "$ctx/rootfs/workspace"
chmod 0755 "$ctx/rootfs/home/agent" "$ctx/rootfs/configs" "$ctx/rootfs/workspace"
chmod 1777 "$ctx/rootfs/tmp"

"$docker" build --pull=false --build-arg "VERSION=${version}" -t "$tag" "$ctx"
echo "built $tag (molecule-agent ${version})"
