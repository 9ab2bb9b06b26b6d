"""The face-parsing swap area (spatial.area.swap_area with BiSeNet) checked for content.

No trained parser ships with the tests, so the BiSeNet here gets a hand-built set of weights whose
labels are known: the ResNet stem, the shortcuts, the fusion and the head pass the three colour
channels through (1/8 resolution, as the real network), and the class layer reads the dominant
channel: red -> skin (1), green -> hat (18, an occluder), blue -> background (0). Every other
weight is zero, so the context path adds nothing. This survives any per-channel input
normalisation with a positive scale (values >= -3), whatever the loader does with BatchNorm.

A painted target crop (a red face with a green hat patch on blue) then has a known adapting area:
upstream's swap grouping, grow65(face) | face+ears, minus occluders, grown by 5. The test checks
that swap_area returns that region (up to the 1/8-resolution border), frame by frame, from the
target crops and not the source ones.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from conftest import PACK  # noqa: F401

from faceadapter_suite.face.records import Face
from faceadapter_suite.models.bisenet import BiSeNet
from faceadapter_suite.spatial import area as area_mod
from faceadapter_suite.spatial.condition import CROP, FaceView, ProjectedLandmarks

SKIN, HAT, BACKGROUND = 1, 18, 0
CLASS_OF_CHANNEL = {0: SKIN, 1: HAT, 2: BACKGROUND}  # red, green, blue
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
OFFSET = 3.0  # keeps the passed-through channels positive through the ReLUs


def _pass_rgb(conv: torch.nn.Conv2d) -> None:
    """Centre tap 1 from input channel c to output channel c (c < 3)."""
    k = conv.kernel_size[0] // 2
    for c in range(3):
        conv.weight.data[c, c, k, k] = 1.0


@torch.no_grad()
def colour_parser() -> BiSeNet:
    net = BiSeNet().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.zero_()
        elif isinstance(module, torch.nn.BatchNorm2d):
            module.weight.fill_(1.0)
            module.bias.zero_()
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
    trunk = net.cp.resnet
    _pass_rgb(trunk.conv1)
    trunk.bn1.bias[:3] = OFFSET
    for layer in (trunk.layer1, trunk.layer2):  # residual blocks: zero branch, shortcut carries x
        for block in layer:
            if block.downsample is not None:
                _pass_rgb(block.downsample[0])
    _pass_rgb(net.ffm.convblk.conv)  # the context half of the concatenation stays zero
    _pass_rgb(net.conv_out.conv.conv)
    head = net.conv_out.conv_out.weight  # (19, 256, 1, 1): channel minus the mean of the other two
    for c, label in CLASS_OF_CHANNEL.items():
        head[label, :3, 0, 0] = -0.5
        head[label, c, 0, 0] = 1.0
    return net


def _labels(logits: torch.Tensor) -> np.ndarray:
    return logits.argmax(dim=1)[0].numpy()


def painted(face_centre: tuple[int, int], radius: int, hat: tuple[int, int, int, int] | None) -> np.ndarray:
    crop = np.zeros((CROP, CROP, 3), np.uint8)
    crop[:] = BLUE
    cv2.circle(crop, face_centre, radius, RED, -1)
    if hat is not None:
        x0, y0, x1, y1 = hat
        crop[y0:y1, x0:x1] = GREEN
    return crop


def expected_area(crop: np.ndarray) -> np.ndarray:
    """Upstream's swap grouping on the painted labels, computed with OpenCV square dilations."""
    face = (crop[..., 0] == 255) & (crop[..., 1] == 0)
    hat = crop[..., 1] == 255
    grow = lambda m, k: cv2.dilate(m.astype(np.uint8), np.ones((k, k), np.uint8)) > 0  # noqa: E731
    return grow(np.maximum(face, grow(face, 65)) & ~hat, 5)


def _view(crop: np.ndarray, index: int) -> FaceView:
    face = Face(bbox=np.array([100, 100, 400, 400], np.float32), score=1.0, kps5=np.zeros((5, 2), np.float32))
    return FaceView(face, index, crop, np.eye(2, 3), np.eye(2, 3))


@pytest.fixture(scope="module")
def parser_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bisenet") / "colour_parser.pth"
    torch.save(colour_parser().state_dict(), path)
    return path


def test_the_hand_built_parser_reads_colours():
    crop = painted((256, 270), 150, (220, 200, 300, 260))
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    labels = _labels(colour_parser()(x))
    assert labels[270, 256] == SKIN and labels[230, 260] == HAT and labels[20, 20] == BACKGROUND
    assert set(np.unique(labels)) <= {SKIN, HAT, BACKGROUND}


def test_swap_area_is_the_parsed_face_region_of_each_target(parser_file):
    first = painted((256, 270), 150, (220, 200, 300, 260))  # face with an occluding patch
    second = painted((200, 300), 110, None)  # a smaller face, further left, nothing in front
    empty = painted((0, 0), 0, None)  # all background: the sources must not be parsed
    landmarks = ProjectedLandmarks(
        pts70=np.zeros((3, 70, 2), np.float32), targets=(_view(first, 0), None, _view(second, 2)),
        sources=(_view(empty, 0), None, _view(empty, 2)), found=(True, False, True), method="test",
        frame_sizes=((CROP, CROP),) * 3)
    net = area_mod.load_parsing_net(parser_file, torch.device("cpu"))
    area = area_mod.swap_area(net, landmarks).numpy() > 0.5
    assert area.shape == (2, CROP, CROP), "one mask per found frame"
    for got, crop, name in ((area[0], first, "first"), (area[1], second, "second")):
        want = expected_area(crop)
        wrong = got != want
        # The parser works at 1/8 resolution: disagreement only within 16 px of the true border.
        border = cv2.dilate((cv2.Canny(want.astype(np.uint8) * 255, 1, 1) > 0).astype(np.uint8),
                            np.ones((33, 33), np.uint8)) > 0
        iou = (got & want).sum() / (got | want).sum()
        assert iou > 0.95 and not (wrong & ~border).any(), f"{name}: IoU {iou:.3f}, {int((wrong & ~border).sum())} px"
    # content, in words: the occluder is cut out, the face grows by ~34 px, the background stays out
    assert not area[0][230, 260] and area[0][270, 256] and area[0][270, 256 + 150 + 25]
    assert not area[0][20, 20] and not area[1][300, 200 + 110 + 60]
