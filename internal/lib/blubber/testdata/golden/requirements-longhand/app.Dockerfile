# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "app"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/bookworm:latest AS tools
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
COPY --chown=65533:65533 ["Makefile", "/srv/app/Makefile"]
RUN ["make", "tools"]
USER 900:900
ENV HOME="/home/runuser"

FROM docker-registry.wikimedia.org/bookworm:latest AS app
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
COPY --chown=65533:65533 ["app/requirements.txt", "/srv/app/requirements.txt"]
RUN python3 -m venv /opt/lib/venv
ENV VIRTUAL_ENV="/opt/lib/venv" \
    PATH="/opt/lib/venv/bin:$PATH"
RUN python3 -m pip install -U 'setuptools!=60.9.0' wheel tox pip
RUN python3 -m pip install -r requirements.txt
COPY --chown=65533:65533 ["config/prod.json", "/srv/app/config/config.json"]
COPY --from=tools --chown=65533:65533 ["/srv/app/bin/", "/usr/local/bin/"]
RUN chmod 0444 /srv/app/config/config.json
COPY --chown=65533:65533 [".", "/srv/app"]
USER 900:900
ENV HOME="/home/runuser"
USER 900
LABEL blubber.variant="app" blubber.version="conveyor-0.1.0"
