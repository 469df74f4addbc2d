# The Molecule platform server. Multi-stage: a Go build stage, then a small
# Alpine runtime (git is needed to fetch pinned github:// plugins) running
# as a non-root user with a HEALTHCHECK.
#
#   docker build -t molecule/platform .
#
# (Building needs the golang and alpine base images from a registry; the
# agent image, by contrast, builds offline: see workspace-template/.)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/molecule-server ./cmd/server \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/molecule-agent ./cmd/molecule-agent

FROM alpine:3.20
RUN apk add --no-cache ca-certificates git tzdata \
 && addgroup -S -g 10001 molecule && adduser -S -u 10001 -G molecule -h /app molecule \
 && mkdir -p /data && chown molecule:molecule /data
COPY --from=build /out/molecule-server /usr/local/bin/molecule-server
COPY --from=build /out/molecule-agent /usr/local/bin/molecule-agent
COPY --chown=molecule:molecule org-templates /app/org-templates
COPY --chown=molecule:molecule plugins /app/plugins
WORKDIR /app
ENV MOLECULE_LISTEN=:8080 \
    MOLECULE_DATA_DIR=/data \
    MOLECULE_ORG_TEMPLATES_DIR=/app/org-templates \
    MOLECULE_PLUGINS_DIR=/app/plugins \
    LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["molecule-server", "healthcheck"]
ENTRYPOINT ["molecule-server"]
