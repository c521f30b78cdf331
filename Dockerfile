# berth: one static binary, no shell, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /berth . && mkdir -p /state

FROM scratch
COPY --from=build /berth /berth
# berth's state volume mounts here; the directory belongs to the non-root user so a fresh
# named volume inherits that owner.
COPY --from=build --chown=65532:65532 /state /var/lib/berth
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/berth"]
CMD ["serve"]
