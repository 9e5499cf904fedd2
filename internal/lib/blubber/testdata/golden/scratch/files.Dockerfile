# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "files"; edit the Blubber config, not this file.

FROM scratch AS files
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
COPY --chown=65533:65533 --exclude=**/*.map ["dist/", "/www/"]
USER 900:900
ENV HOME="/home/runuser"
USER 900:900
ENTRYPOINT ["/www/server"]
LABEL blubber.variant="files" blubber.version="conveyor-0.1.0"
