#!/bin/sh
# berth's first run: writes .env (OWNER, a generated SECRET and API_TOKEN, DOCKER_GID, DOCKER_SOCKET) unless it
# exists, starts the example app and berth, and prints the webhook URL to give your registry.
# Afterwards plain `docker compose ps`, `logs` and `up -d` work here, because they read .env too.
#
#   ./setup.sh yourname      # yourname: the namespace whose pushes berth deploys (your Docker Hub user)
#
# DOCKER_SOCKET (default /var/run/docker.sock) is the engine's socket, e.g. a rootless engine's.
set -eu
cd "$(dirname "$0")"

if [ -f .env ]; then
	echo "setup: keeping the existing .env (delete it to start over)"
else
	owner=${1:?usage: ./setup.sh OWNER   (the registry namespace whose pushes berth deploys, e.g. your Docker Hub user name)}
	socket=${DOCKER_SOCKET:-/var/run/docker.sock}
	if ! gid=$(stat -c %g "$socket" 2>/dev/null); then
		echo "setup: no Docker socket at $socket; set DOCKER_SOCKET to its path (rootless: /run/user/\$(id -u)/docker.sock)" >&2
		exit 1
	fi
	random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
	# .env holds the webhook secret and the status API's token: readable by its owner only.
	(umask 077 && printf 'OWNER=%s\nSECRET=%s\nAPI_TOKEN=%s\nDOCKER_GID=%s\nDOCKER_SOCKET=%s\n' \
		"$owner" "$(random)" "$(random)" "$gid" "$socket" >.env)
	echo "setup: wrote .env (OWNER=$owner, a new SECRET, DOCKER_GID=$gid)"
fi

docker compose -f example/compose.yaml up -d
docker compose up -d --build

# berth stops at start with one line naming the fix when something is wrong: show it.
i=0
until docker compose logs berth 2>/dev/null | grep -q listening; do
	i=$((i + 1))
	if [ "$i" -gt 60 ] || [ -n "$(docker compose ps -a -q --status exited --status restarting berth)" ]; then
		docker compose logs berth >&2
		echo "setup: berth did not start; fix what its log says (in .env), then run ./setup.sh again" >&2
		exit 1
	fi
	sleep 1
done

secret=$(sed -n 's/^SECRET=//p' .env | head -n 1)
port=$(docker compose port berth 8080)
cat <<EOF

berth is running: docker compose ps, docker compose logs berth; health: curl http://$port/healthz
Your webhook URL (Docker Hub: repository → Webhooks), once HTTPS reaches berth's port ${port##*:}
(see docs/exposure.md):

  https://YOUR-HOST/webhook?secret=$secret

EOF
