# syntax=docker/dockerfile:1
# ferry's container image: a build stage on the pinned toolchain, then a distroless runtime
# that holds the binary, the reference config and the sample site, and nothing else.
#
#   docker build -t ferry .
#   docker run --read-only -p 8080:8080 -p 9090:9090 ferry
#
# ferry reads /etc/ferry/ferry.toml: mount your own over it (deploy/k8s uses a ConfigMap,
# deploy/compose a bind mount). It writes nothing outside the cache directory
# (/var/cache/ferry, give it a volume), so the root filesystem can be read-only.

# Keep this tag equal to `channel` in rust-toolchain.toml (tests/deploy.rs checks it).
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# Only what the binary is built from: the crates (ferry and its ferry-sys), the lock file,
# the build script and the embedded config.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY sys ./sys
COPY config ./config
# The cargo registry and target directory are build caches; the binary is copied out of them
# in the same step, stripped (57 MB with the line tables the release profile keeps for perf,
# under 8 MB without). An empty cache directory is made here (the runtime image has no shell).
# scripts/test.sh runs this same cargo command, so CI proves it builds.
# The context has no .git: pass the commit for `ferry --version` and ferry_build_info, and
# SOURCE_DATE_EPOCH for a reproducible build date, e.g.
#   docker build --build-arg FERRY_GIT_COMMIT=$(git rev-parse --short=12 HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) -t ferry .
ARG FERRY_GIT_COMMIT=unknown
ARG SOURCE_DATE_EPOCH
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -s -m 0755 target/release/ferry /out/ferry \
    && install -d -m 0750 /out/cache

# glibc and libgcc only (the same Debian 12 the build stage links against), no shell, no
# package manager; uid 65532 is the image's unprivileged `nonroot` user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ferry /usr/local/bin/ferry
COPY config/ferry.toml /etc/ferry/ferry.toml
COPY public /srv/public
COPY --from=build --chown=65532:65532 /out/cache /var/cache/ferry
WORKDIR /srv
USER 65532:65532
# The reference config listens on loopback; in a container ferry must listen on every
# interface. (Variables win over the file: see "Environment overrides" in config/ferry.toml.)
ENV FERRY__SERVER__LISTEN=0.0.0.0:8080 \
    FERRY__ADMIN__LISTEN=0.0.0.0:9090
# 8080: HTTP. 8443: HTTPS, when the config has a [tls] section.
# 9090: admin (/metrics, /healthz, /readyz); keep it off the public network.
EXPOSE 8080 8443 9090
VOLUME ["/var/cache/ferry"]
# SIGTERM starts a graceful drain of up to server.shutdown_grace.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["serve", "--config", "/etc/ferry/ferry.toml"]
