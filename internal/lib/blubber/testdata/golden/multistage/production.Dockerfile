# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "production"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/golang1.22:latest AS prep
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/service /opt/lib && chown 65533:65533 /srv/service /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/service
COPY --chown=65533:65533 ["Makefile", "/srv/service/Makefile"]
COPY --chown=65533:65533 ["go.mod", "/srv/service/go.mod"]
COPY --chown=65533:65533 ["go.sum", "/srv/service/go.sum"]
RUN make dist
COPY --chown=65533:65533 [".", "/srv/service"]
USER 900:900
ENV HOME="/home/runuser"

FROM docker-registry.wikimedia.org/golang1.22:latest AS build
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/service /opt/lib && chown 65533:65533 /srv/service /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/service
COPY --chown=65533:65533 ["Makefile", "/srv/service/Makefile"]
COPY --chown=65533:65533 ["go.mod", "/srv/service/go.mod"]
COPY --chown=65533:65533 ["go.sum", "/srv/service/go.sum"]
RUN ["make", "build"]
COPY --chown=65533:65533 [".", "/srv/service"]
USER 900:900
ENV HOME="/home/runuser"

FROM docker-registry.wikimedia.org/bookworm:latest AS production
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/service /opt/lib && chown 65533:65533 /srv/service /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/service
COPY --from=prep --chown=65533:65533 ["/srv/service/", "/srv/service/"]
COPY --from=prep --chown=65533:65533 ["/opt/lib/", "/opt/lib/"]
COPY --from=build --chown=65533:65533 ["/srv/service/bin/tool", "/usr/local/bin/tool"]
COPY --from=docker-registry.wikimedia.org/wikimedia-ca:latest --chown=65533:65533 ["/etc/ssl/certs/wmf-ca.pem", "/etc/ssl/certs/wmf-ca.pem"]
USER 900:900
ENV HOME="/home/runuser"
USER 900
ENTRYPOINT ["./service", "--config", "/etc/service/config.yaml"]
LABEL blubber.variant="production" blubber.version="conveyor-0.1.0"
