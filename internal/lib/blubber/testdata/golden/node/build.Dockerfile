# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "build"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/nodejs18-devel AS build
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/service /opt/lib && chown 65533:65533 /srv/service /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/service
COPY --chown=65533:65533 ["package.json", "/srv/service/package.json"]
COPY --chown=65533:65533 ["package-lock.json", "/srv/service/package-lock.json"]
RUN npm ci
ENV NODE_ENV=""
COPY --chown=65533:65533 [".", "/srv/service"]
USER 900:900
ENV HOME="/home/runuser"
USER 900
LABEL blubber.variant="build" blubber.version="conveyor-0.1.0"
