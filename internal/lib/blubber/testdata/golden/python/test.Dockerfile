# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "test"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/python3-bookworm AS test
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
COPY --chown=65533:65533 ["requirements.txt", "/srv/app/requirements.txt"]
COPY --chown=65533:65533 ["test-requirements.txt", "/srv/app/test-requirements.txt"]
RUN python3 -m venv /opt/lib/venv --system-site-packages
ENV VIRTUAL_ENV="/opt/lib/venv" \
    PATH="/opt/lib/venv/bin:$PATH"
RUN python3 -m pip install -U 'setuptools!=60.9.0' wheel tox==4.11.0 'pip<24'
RUN python3 -m pip install --no-deps -r requirements.txt -r test-requirements.txt
RUN python3 -m pip check
COPY --chown=65533:65533 [".", "/srv/app"]
USER 65533
ENTRYPOINT ["tox"]
LABEL blubber.variant="test" blubber.version="conveyor-0.1.0"
