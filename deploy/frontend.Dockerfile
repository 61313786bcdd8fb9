# voxlive front end: the built web app behind nginx on port 8001; nginx also proxies /audio and
# the HTTP API to the back end, so the browser uses one origin.
# The base images are build arguments so that compatible stand-ins can replace them (the image
# test builds them from Debian packages where no registry is reachable); the defaults are the
# official images.
ARG NODE_IMAGE=node:20-bookworm-slim
ARG NGINX_IMAGE=nginxinc/nginx-unprivileged:1.27-alpine
FROM ${NODE_IMAGE} AS build
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
# Build-time WebSocket URL (the seed's variable); empty means same origin /audio.
ARG REACT_APP_WS_URL=""
ENV REACT_APP_WS_URL=${REACT_APP_WS_URL}
RUN npm run build

FROM ${NGINX_IMAGE}
# Run-time settings: where the back end is, the port nginx listens on, and optionally the public
# WebSocket URL written to /config.json at start (one image fits any deployment).
ENV VOXLIVE_BACKEND=http://backend:8000 \
    VOXLIVE_FRONTEND_PORT=8001 \
    VOXLIVE_PUBLIC_WS_URL=""
COPY deploy/nginx/voxlive.conf.template /etc/nginx/templates/default.conf.template
COPY deploy/nginx/40-voxlive-config.sh /docker-entrypoint.d/40-voxlive-config.sh
COPY --from=build /web/dist /usr/share/nginx/html
USER 0
RUN chmod 0755 /docker-entrypoint.d/40-voxlive-config.sh \
    && chown -R 101:101 /usr/share/nginx/html
USER 101
EXPOSE 8001
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["sh", "-c", "wget -q -O /dev/null http://127.0.0.1:${VOXLIVE_FRONTEND_PORT}/"]
