# syntax=docker/dockerfile:1.7
# Rendered by conveyor's Blubber conveyor-0.1.0 for variant "kafka"; edit the Blubber config, not this file.

FROM docker-registry.wikimedia.org/bookworm:latest AS kafka
USER 0:0
ENV HOME="/root"
COPY --chmod=644 <<'EOF' /etc/apt/apt.conf.d/99blubber-proxies
Acquire::http::Proxy "http://webproxy.eqiad.wmnet:8080";
Acquire::http::Proxy::apt.wikimedia.org "http://webproxy.codfw.wmnet:8080";
EOF
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --chmod=644 <<'EOF' /etc/apt/keyrings/blubber-0.asc
-----BEGIN PGP PUBLIC KEY BLOCK-----
mQINBFake
-----END PGP PUBLIC KEY BLOCK-----
EOF
COPY --chmod=644 <<'EOF' /etc/apt/sources.list.d/blubber-0.list
deb [signed-by=/etc/apt/keyrings/blubber-0.asc] http://apt.wikimedia.org/wikimedia bookworm-wikimedia thirdparty/confluent
EOF
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ca-certificates curl confluent-kafka-2.11 && DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports librdkafka1 && rm -rf /var/lib/apt/lists/* && rm -f /etc/apt/apt.conf.d/99blubber-proxies
RUN (getent group 65533 || groupadd -o -g 65533 -r somebody) && (getent passwd 65533 || useradd -l -o -m -d /home/somebody -r -g 65533 -u 65533 somebody) && (getent group 900 || groupadd -o -g 900 -r runuser) && (getent passwd 900 || useradd -l -o -m -d /home/runuser -r -g 900 -u 900 runuser) && mkdir -p /srv/app /opt/lib && chown 65533:65533 /srv/app /opt/lib
USER 65533:65533
ENV HOME="/home/somebody"
WORKDIR /srv/app
USER 900:900
ENV HOME="/home/runuser"
USER 900
ENTRYPOINT ["kafkacat"]
LABEL blubber.variant="kafka" blubber.version="conveyor-0.1.0"
