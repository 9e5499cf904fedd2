# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "build"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/releng/composer-php81:latest AS build
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r composer) && (getent passwd 65533 || useradd -l -o -m -d /home/composer -r -g 65533 -u 65533 composer) && (getent group 33 || groupadd -o -g 33 -r runuser) && (getent passwd 33 || useradd -l -o -m -d /home/runuser -r -g 33 -u 33 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/composer"
WORKDIR /srv/app
COPY --chown=65533:65533 ["composer.json", "/srv/app/composer.json"]
COPY --chown=65533:65533 ["composer.lock", "/srv/app/composer.lock"]
RUN composer install --no-scripts --no-dev
USER 33:33
ENV HOME="/home/runuser"
USER 33
LABEL blubber.variant="build" blubber.version="conveyor-0.1.0"
