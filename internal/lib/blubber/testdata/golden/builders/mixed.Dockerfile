# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "mixed"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/php8.1-cli:latest AS mixed
USER 0:0
ENV HOME="/root"
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv composer && rm -rf /var/lib/apt/lists/*
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
COPY --chown=65533:65533 ["scripts/", "/srv/app/scripts/"]
RUN ["./scripts/prepare.sh"]
COPY --chown=65533:65533 ["composer.json", "/srv/app/composer.json"]
RUN composer install --no-scripts
COPY --chown=65533:65533 ["requirements.txt", "/srv/app/requirements.txt"]
RUN python3 -m venv /opt/lib/venv
ENV VIRTUAL_ENV="/opt/lib/venv" \
    PATH="/opt/lib/venv/bin:$PATH"
RUN python3 -m pip install -U 'setuptools!=60.9.0' wheel tox pip
RUN python3 -m pip install -r requirements.txt
RUN --mount=type=bind,source=.,target=/srv/app,rw make all && make check
COPY --chown=65533:65533 [".", "/srv/app"]
USER 900:900
ENV HOME="/home/runuser"
USER 900
ENTRYPOINT ["php", "bin/run.php"]
LABEL blubber.variant="mixed" blubber.version="conveyor-0.1.0"
