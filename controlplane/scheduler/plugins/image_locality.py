"""ImageLocality: prefer nodes that already hold the pod's images
(node.status.images), so it starts sooner. Kubernetes' formula: per container
image the node has, its size × the share of nodes that have it (an image on
every node is no reason to pick this one), summed and scaled to 0-100 between
23 MB and 1000 MB × the number of containers. Names are compared normalized
(`busybox` is `busybox:latest`)."""
from __future__ import annotations

from controlplane.scheduler.framework import MAX_SCORE, NodeInfo, Snapshot, register
from proto.skiff.v1 import types_pb2

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def normalized(name: str) -> str:
    if name.rfind(":") <= name.rfind("/"):
        name += ":latest"
    return name


def node_images(node: types_pb2.Node) -> dict[str, int]:
    return {normalized(n): image.size_bytes for image in node.status.images for n in image.names}


def _images(info: NodeInfo) -> dict[str, int]:
    images = info.memo.get("images")
    if images is None:
        images = info.memo["images"] = node_images(info.node)
    return images


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    sum_scores = min(max(sum_scores, MIN_THRESHOLD), max_threshold)
    return MAX_SCORE * (sum_scores - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


@register("ImageLocality")
class ImageLocality:
    def __init__(self) -> None:
        self.spread: dict[str, int] = {}
        self.total_nodes = 0

    def pre_score(self, pod: types_pb2.Pod, snapshot: Snapshot, feasible: list[NodeInfo]) -> bool:
        if not snapshot.have_images:
            return False   # no node reports images: nothing tells nodes apart
        wanted = {normalized(c.image) for c in (*pod.spec.init_containers, *pod.spec.containers)}
        self.total_nodes = len(snapshot.nodes)
        self.spread = {image: 0 for image in wanted}
        for info in snapshot.nodes:
            for image in wanted & _images(info).keys():
                self.spread[image] += 1
        return True

    def score(self, pod: types_pb2.Pod, node: NodeInfo) -> int:
        containers = [*pod.spec.init_containers, *pod.spec.containers]
        have = _images(node)
        total = 0
        for c in containers:
            image = normalized(c.image)
            if image in have and self.total_nodes:
                total += int(have[image] * self.spread.get(image, 1) / self.total_nodes)
        return calculate_priority(total, len(containers)) if containers else 0
