# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "assets"; edit the Blubber config, not this file.

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
USER 900
LABEL blubber.variant="assets" blubber.version="conveyor-0.1.0"
