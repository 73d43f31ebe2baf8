# syntax=docker/dockerfile:1
#
# One image for both sides: `cairn run` (deploy/controller.yaml, management cluster) and
# `cairn agent` (the agent Deployment rendered into each workload cluster, from the fleet's
# spec.agent.image).
#
#   docker build -t ghcr.io/acme/cairn:0.1.0 .

FROM rust:1.95-bookworm AS build
# git2 vendors libgit2, libssh2 and OpenSSL: building OpenSSL needs perl and make (both are in
# this image already; listed so a slimmer base fails here, clearly).
RUN apt-get update \
    && apt-get install -y --no-install-recommends perl make \
    && rm -rf /var/lib/apt/lists/*
# Link zlib statically too, so the binary needs only glibc and libgcc from the runtime image.
ENV LIBZ_SYS_STATIC=1
WORKDIR /src
COPY . .
# The registry and target caches speed up rebuilds; the binary is copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cairn \
    && install -D -m 0755 target/release/cairn /out/cairn

# glibc, libgcc, CA certificates (for https git remotes), no shell, user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/cairn /usr/local/bin/cairn
ENV HOME=/home/nonroot
USER 65532:65532
ENTRYPOINT ["cairn"]
CMD ["--help"]
