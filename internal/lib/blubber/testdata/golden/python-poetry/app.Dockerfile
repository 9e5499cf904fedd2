# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "app"; edit the Blubber config, not this file.

FROM python:3.11-bookworm AS app
USER 0:0
ENV HOME="/root"
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
COPY --chown=65533:65533 ["pyproject.toml", "/srv/app/pyproject.toml"]
COPY --chown=65533:65533 ["poetry.lock", "/srv/app/poetry.lock"]
RUN python3.11 -m venv /opt/lib/app-venv
ENV VIRTUAL_ENV="/opt/lib/app-venv" \
    PATH="/opt/lib/app-venv/bin:$PATH"
RUN python3.11 -m pip install -U 'setuptools!=60.9.0' wheel tox pip
ENV POETRY_VIRTUALENVS_PATH="/opt/lib/poetry"
RUN python3.11 -m pip install -U poetry==1.8.3
RUN poetry install --no-root --without dev
COPY --chown=65533:65533 [".", "/srv/app"]
USER 900:900
ENV HOME="/home/runuser"
USER 900
ENTRYPOINT ["poetry", "run", "python3", "app.py"]
LABEL blubber.variant="app" blubber.version="conveyor-0.1.0"
