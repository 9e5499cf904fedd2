# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "insecure"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/bookworm:latest AS insecure
USER 0:0
ENV HOME="/root"
RUN (getent group 1000 || groupadd -o -g 1000 -r builder) && (getent passwd 1000 || useradd -l -o -m -d /home/builder -r -g 1000 -u 1000 builder) && (getent group 1001 || groupadd -o -g 1001 -r app) && (getent passwd 1001 || useradd -l -o -m -d /home/app -r -g 1001 -u 1001 app) && mkdir -p /srv/app /opt/lib && chown 1000:1000 /srv/app /opt/lib
USER 1000:1000
ENV HOME="/home/builder"
WORKDIR /srv/app
ENV PATH_EXTRA="$HOME/bin"
COPY --chown=1000:1000 [".", "/srv/app"]
WORKDIR /srv/app/run
USER 1000
ENTRYPOINT ["./run.sh", "--port", "8080"]
LABEL blubber.variant="insecure" blubber.version="conveyor-0.1.0"
