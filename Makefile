# Container images (needs a Docker engine; none runs on the development machines).
IMAGE ?= torpor-worker
TAG ?= 0.1.0
BASE_IMAGE ?=

.PHONY: images worker-image placeholder-image buildkit-images
images: worker-image

worker-image:
	docker build -f deploy/images/worker.Dockerfile -t $(IMAGE):$(TAG) .

placeholder-image:
	@test -n "$(BASE_IMAGE)" || (echo "set BASE_IMAGE=your-app:tag" && exit 1)
	docker build -f deploy/images/placeholder.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(BASE_IMAGE)-torpor .

# The worker image without a Docker engine (as root): BuildKit built by the set-up (TORPOR_SETUP_KUBE=1),
# the Dockerfile's bases made from Debian packages; an OCI archive in .torpor/images/ (ctr images import).
buildkit-images:
	bash scripts/build-images.sh
