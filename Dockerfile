# syntax=docker/dockerfile:1
# Build: docker build -t ferry .
# Run:   docker run -p 8080:8080 -p 9090:9090 -v "$PWD/public:/srv/public:ro" ferry
# ferry reads /etc/ferry/ferry.toml (mount your own over it).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
COPY src ./src
COPY config ./config
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ferry
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
COPY config/ferry.toml /etc/ferry/ferry.toml
WORKDIR /srv
COPY public /srv/public
USER 10001
# 8080: HTTP; 9090: admin (/metrics, /healthz, /readyz)
EXPOSE 8080 9090
ENV FERRY__SERVER__LISTEN=0.0.0.0:8080 FERRY__ADMIN__LISTEN=0.0.0.0:9090
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve", "--config", "/etc/ferry/ferry.toml"]
