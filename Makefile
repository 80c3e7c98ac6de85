# Container images (needs a Docker engine; none runs on the development machines).
IMAGE ?= torpor-worker
TAG ?= 0.1.0
BASE_IMAGE ?=

.PHONY: images worker-image placeholder-image
images: worker-image

worker-image:
	docker build -f deploy/images/worker.Dockerfile -t $(IMAGE):$(TAG) .

placeholder-image:
	@test -n "$(BASE_IMAGE)" || (echo "set BASE_IMAGE=your-app:tag" && exit 1)
	docker build -f deploy/images/placeholder.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(BASE_IMAGE)-torpor .
