# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "dev-tools"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/bookworm:latest AS dev-tools
USER 0:0
ENV HOME="/root"
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ca-certificates git vim && rm -rf /var/lib/apt/lists/*
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
ENV DEV="1" \
    LEVEL="dev-tools" \
    TOP="1"
COPY --chown=65533:65533 [".", "/srv/app"]
USER 900:900
ENV HOME="/home/runuser"
USER 900
LABEL blubber.variant="dev-tools" blubber.version="conveyor-0.1.0"
