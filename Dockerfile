# maasd image: a thin wrapper over what CI proves. Dependencies come from the
# same deploy/install-deps.sh, the binary from the same `make build`.
#
#   docker build -t maasd .
#   docker run -p 8080:8080 -v maasd-data:/var/lib/maasd maasd

FROM debian:12-slim AS build
WORKDIR /src
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN deploy/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make build

FROM debian:12-slim
COPY deploy/install-deps.sh /usr/local/share/maasd/install-deps.sh
RUN /usr/local/share/maasd/install-deps.sh --runtime \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/maasd --shell /usr/sbin/nologin maasd \
 && mkdir -p /var/lib/maasd \
 && chown maasd:maasd /var/lib/maasd
COPY --from=build /src/build/maasd /usr/local/bin/maasd
USER maasd
WORKDIR /var/lib/maasd
VOLUME ["/var/lib/maasd"]
ENV MAASD_DB=/var/lib/maasd/maasd.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["maasd", "serve", "--listen", "0.0.0.0:8080"]
