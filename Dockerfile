# berth: one static binary on scratch, no shell, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, in their own layer: it stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /berth . && mkdir -p /state

FROM scratch
# CA certificates for registries and engines berth reaches over TLS (DOCKER_HOST=tcp://…:2376).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /berth /berth
# berth's state volume mounts here; the directory belongs to the non-root user so a fresh
# named volume inherits that owner.
COPY --from=build --chown=65532:65532 /state /var/lib/berth
# Non-root: berth itself needs no socket (the socket proxy gets the socket's group with
# group_add, see docker-compose.yml).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/berth"]
CMD ["serve"]
