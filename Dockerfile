# berth: one static binary on scratch, no shell, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, in their own layer: it stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION and REVISION (docker compose passes BERTH_VERSION and BERTH_REVISION; or
# --build-arg VERSION=$(git describe --tags --always --dirty)) are what `berth version` prints.
ARG VERSION=
ARG REVISION=
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags="-s -w -X github.com/berth-dev/berth/internal/command.stampedVersion=${VERSION} -X github.com/berth-dev/berth/internal/command.stampedRevision=${REVISION}" \
      -o /berth . && mkdir -p /state

FROM scratch
ARG VERSION=
ARG REVISION=
LABEL org.opencontainers.image.title="berth" \
      org.opencontainers.image.description="Redeploys docker compose services when a registry reports a push" \
      org.opencontainers.image.source="https://github.com/berth-dev/berth" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# CA certificates for registries and engines berth reaches over TLS (DOCKER_HOST=tcp://…:2376).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# On PATH, so `docker compose exec berth berth status` works as the README writes it.
COPY --from=build /berth /usr/local/bin/berth
ENV PATH=/usr/local/bin
# berth's state volume mounts here; the directory belongs to the non-root user so a fresh
# named volume inherits that owner.
COPY --from=build --chown=65532:65532 /state /var/lib/berth
# Non-root: berth itself needs no socket (the socket proxy gets the socket's group with
# group_add, see docker-compose.yml).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["serve"]
