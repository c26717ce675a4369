"""NaiveNet, rebuilt from the seed's `naivenet_128x128_cuda.py` (320,464 parameters for 100 classes).

SiLU everywhere, BatchNorm momentum 0.05, convolutions bias-free unless noted. Total stride 8.
  frontend  bottleneck 3->16 (1x1 to 36, 3x3 s2, 1x1 to 16, SE/4); residual 16;
            conv block 16->64 (3x3 s2 with bias, BN, SiLU, Dropout2d 0.05)
  main      residual 64; quick block 64 (3x3 depthwise, SiLU, 1x1, BN, SiLU, + input); residual 64;
            separable bottleneck 64->96 (1x1 to 192, 3x3 depthwise, 1x1 to 96, each BN+SiLU; SE/4)
  backend   quick block 96->64 (no skip: shapes differ); residual 64; conv block 64->32 s2;
            Dropout 0.1; global average pool; linear 32->classes
SE uses torchvision.ops.SqueezeExcitation, whose 1x1 convs carry biases: 320,604 parameters.

Knobs: `width` multiplies every channel count, `depth` sets the main stage's residual blocks
(split around the quick block, the seed's 1 + 1 at depth 2), `se` places the SE blocks
(none, frontend, main, both = the seed's, all = after every block), `separable=False` swaps the
main stage's depthwise convs for standard 3x3 convs, and any `resolution` works (global pooling).
"""

from __future__ import annotations

from torch import nn
from torchvision.ops import SqueezeExcitation

from study.config import Config
from study.engine.models import register

BN_MOMENTUM = 0.05


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=BN_MOMENTUM)


def _se(c: int) -> nn.Module:
    return SqueezeExcitation(c, c // 4)


class Residual(nn.Module):
    """Two 3x3 conv + BN, added to the input, then SiLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c), nn.SiLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c),
        )
        self.act = nn.SiLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.body(x))


class Quick(nn.Module):
    """3x3 depthwise (or standard), SiLU, 1x1, BN, SiLU; plus the input when shapes match."""

    def __init__(self, cin: int, cout: int, separable: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin if separable else 1, bias=False), nn.SiLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False), _bn(cout), nn.SiLU(inplace=True),
        )
        self.skip = cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y


def _conv_block(cin: int, cout: int, dropout: float = 0.0) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=True), _bn(cout), nn.SiLU(inplace=True)]
    return nn.Sequential(*layers, nn.Dropout2d(dropout)) if dropout else nn.Sequential(*layers)


def _bottleneck(cin: int, mid: int, cout: int, stride: int, depthwise: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.SiLU(inplace=True),
        nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid if depthwise else 1, bias=False),
        _bn(mid), nn.SiLU(inplace=True),
        nn.Conv2d(mid, cout, 1, bias=False), _bn(cout), nn.SiLU(inplace=True),
    )


class NaiveNet(nn.Module):
    def __init__(
        self, num_classes: int = 100, width: float = 1.0, depth: int = 2, se: str = "both", separable: bool = True
    ) -> None:
        super().__init__()

        def ch(c: int) -> int:
            return max(4, round(c * width))

        c16, c36, c64, c96, c192, c32 = ch(16), ch(36), ch(64), ch(96), ch(192), ch(32)
        se_front = se in ("frontend", "both", "all")
        se_main = se in ("main", "both", "all")
        every = se == "all"

        def maybe_se(block: nn.Module, c: int, on: bool) -> nn.Module:
            return nn.Sequential(block, _se(c)) if on else block

        self.frontend = nn.Sequential(
            maybe_se(_bottleneck(3, c36, c16, stride=2, depthwise=False), c16, se_front),
            maybe_se(Residual(c16), c16, every),
            maybe_se(_conv_block(c16, c64, dropout=0.05), c64, every),
        )
        before, after = (depth + 1) // 2, depth // 2
        self.main = nn.Sequential(
            *[maybe_se(Residual(c64), c64, every) for _ in range(before)],
            maybe_se(Quick(c64, c64, separable), c64, every),
            *[maybe_se(Residual(c64), c64, every) for _ in range(after)],
            maybe_se(_bottleneck(c64, c192, c96, stride=1, depthwise=separable), c96, se_main),
        )
        self.backend = nn.Sequential(
            maybe_se(Quick(c96, c64), c64, every),
            maybe_se(Residual(c64), c64, every),
            maybe_se(_conv_block(c64, c32), c32, every),
            nn.Dropout(0.1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c32, num_classes),
        )

    def forward(self, x):
        return self.backend(self.main(self.frontend(x)))


@register("naivenet")
def build(config: Config, num_classes: int) -> NaiveNet:
    return NaiveNet(num_classes, config.width, config.depth, config.se, config.separable)
