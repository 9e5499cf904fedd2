# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "files"; edit the Blubber config, not this file.

FROM scratch AS files
COPY --chown=0:0 --exclude=**/*.map ["dist/", "/www/"]
ENTRYPOINT ["/www/server"]
LABEL blubber.variant="files" blubber.version="conveyor-0.1.0"
