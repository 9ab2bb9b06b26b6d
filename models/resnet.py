"""Shared ResNet parts with torchvision-compatible parameter names.

Several official checkpoints (D3DFR's ResNet-50, the adapting-area UNet's ResNet-18
encoder, BiSeNet's context path, DECA's encoder) store a plain torchvision-style
ResNet trunk under some prefix. Building all of them from these classes keeps the key
names (``conv1``, ``bn1``, ``layer{1..4}.{i}.conv{1,2,3}``, ``downsample.{0,1}``) in one
place, and lets every network share the same inference-time BatchNorm folding.
"""
from __future__ import annotations

from typing import Sequence, Type, Union

import torch
from torch import nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNetTrunk",
    "resnet18_trunk",
    "resnet50_trunk",
    "fold_batchnorm",
    "fuse_conv_bn",
]


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """Bias-free conv with 'same' padding, as every ResNet conv before a BatchNorm."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs plus shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 bottleneck with the stride on the 3x3 conv (torchvision "v1.5")."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv(inplanes, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * self.expansion, 1)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


Block = Type[Union[BasicBlock, Bottleneck]]


class ResNetTrunk(nn.Module):
    """ResNet without pooling head or fc: stem + four stages.

    ``forward`` returns the last stage; ``forward_features`` returns the stem activation
    (stride 2, before max-pool) and the four stage outputs, which is what UNet-style
    decoders and BiSeNet's context path consume.
    """

    def __init__(self, block: Block, layers: Sequence[int], in_channels: int = 3, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = width
        stages = []
        for i, blocks in enumerate(layers):
            planes = width * 2**i
            stage, inplanes = self._make_stage(block, inplanes, planes, blocks, stride=1 if i == 0 else 2)
            stages.append(stage)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = inplanes

    @staticmethod
    def _make_stage(block: Block, inplanes: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
        out = planes * block.expansion
        downsample = None
        if stride != 1 or inplanes != out:
            downsample = nn.Sequential(_conv(inplanes, out, 1, stride), nn.BatchNorm2d(out))
        modules = [block(inplanes, planes, stride, downsample)]
        modules += [block(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*modules), out

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[stem (1/2), layer1 (1/4), layer2 (1/8), layer3 (1/16), layer4 (1/32)]."""
        stem = self.relu(self.bn1(self.conv1(x)))
        feats = [stem]
        x = self.maxpool(stem)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[-1]


def resnet18_trunk(in_channels: int = 3) -> ResNetTrunk:
    """ResNet-18 trunk (BasicBlock, [2, 2, 2, 2]), 512 output channels."""
    return ResNetTrunk(BasicBlock, (2, 2, 2, 2), in_channels=in_channels)


def resnet50_trunk(in_channels: int = 3) -> ResNetTrunk:
    """ResNet-50 trunk (Bottleneck, [3, 4, 6, 3]), 2048 output channels."""
    return ResNetTrunk(Bottleneck, (3, 4, 6, 3), in_channels=in_channels)


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a conv equal to ``bn(conv(x))`` in eval mode.

    The maths is in the weights' dtype (float32) in upstream D3DFR's order
    (third_party/model_resnet_d3dfr.py fuse): w * (gamma / sqrt(var + eps)),
    (b - mean) / sqrt(var + eps) * gamma + beta, so fused weights equal upstream's bit for bit."""
    w = conv.weight
    var_sqrt = torch.sqrt(bn.running_var + bn.eps)
    b = conv.bias if conv.bias is not None else bn.running_mean.new_zeros(bn.running_mean.shape)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                      device=w.device, dtype=w.dtype)
    fused.weight.copy_(w * (bn.weight / var_sqrt).reshape([conv.out_channels, 1, 1, 1]))
    fused.bias.copy_((b - bn.running_mean) / var_sqrt * bn.weight + bn.bias)
    return fused


_CONV_BN_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def fold_batchnorm(trunk: ResNetTrunk) -> ResNetTrunk:
    """Fold every BatchNorm of a trunk into the conv before it (inference only, in place).

    The state_dict keys change afterwards (no ``bn*``), so fold only after loading weights.
    """
    trunk.eval()
    for module in list(trunk.modules()):
        if not isinstance(module, (ResNetTrunk, BasicBlock, Bottleneck)):
            continue
        for conv_name, bn_name in _CONV_BN_PAIRS:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn(conv, bn))
                setattr(module, bn_name, nn.Identity())
        down = getattr(module, "downsample", None)
        if isinstance(down, nn.Sequential) and isinstance(down[1], nn.BatchNorm2d):
            down[0] = fuse_conv_bn(down[0], down[1])
            down[1] = nn.Identity()
    return trunk
