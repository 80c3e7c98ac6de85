# Makes an application image restore-ready (ChReK's "placeholder" target): the same image, with
# smart-entrypoint in front of its command. Build from the repository root:
#   docker build -f deploy/images/placeholder.Dockerfile --build-arg BASE_IMAGE=my-app:1.0 -t my-app:1.0-torpor .
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY deploy/images/smart-entrypoint.sh /usr/local/bin/smart-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/smart-entrypoint.sh"]
