# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "build"; edit the Blubber config, not this file.

FROM node:22-bookworm AS assets
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /src /opt/lib && chown 65533:65533 /src /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /src
ENV CGO_ENABLED="0" \
    GOCACHE="/var/cache/go"
COPY --chown=65533:65533 ["package.json", "/src/package.json"]
RUN npm install
ENV NODE_ENV=""
COPY --chown=65533:65533 ["webpack.config.js", "/src/webpack.config.js"]
COPY --chown=65533:65533 ["src/", "/src/src/"]
RUN npm run build
USER 900:900
ENV HOME="/home/runuser"

FROM golang:1.22 AS build
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
ENV CGO_ENABLED="0" \
    GOCACHE="/var/cache/go"
COPY --chown=65533:65533 ["go.mod", "/srv/app/go.mod"]
COPY --chown=65533:65533 ["go.sum", "/srv/app/go.sum"]
RUN --mount=type=cache,target=/var/cache/go,id=/var/cache/go,sharing=shared,uid=65533,gid=65533 ["go", "mod", "download"]
COPY --chown=65533:65533 --exclude=*.md --exclude=docs/ [".", "/srv/app"]
RUN --mount=type=bind,from=assets,source=/src/dist,target=/srv/app/dist,rw --mount=type=cache,target=/var/cache/go,id=gocache,sharing=locked,uid=65533,gid=65533 <<'EOF'
#!/bin/bash
set -euo pipefail
go build -o /srv/app/server ./cmd/server
EOF
USER 900:900
ENV HOME="/home/runuser"
USER 900
LABEL blubber.variant="build" blubber.version="conveyor-0.1.0"
