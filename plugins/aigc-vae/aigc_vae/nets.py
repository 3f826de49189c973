"""Encoder and decoder networks, sized from the image shape.

Each level is a stride-2 3x3 convolution, so a side of s pixels becomes ceil(s / 2): any image
size works, not only powers of two (28 -> 14 -> 7 -> 4). The decoder mirrors the encoder and
picks each transposed convolution's output padding so it lands on the encoder's sizes exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def level_sizes(size: int, depth: int) -> list[int]:
    sizes = [size]
    for _ in range(depth):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class Encoder(nn.Module):
    def __init__(self, channels: int, height: int, width: int, widths: list[int], hidden: int,
                 latent: int, num_classes: int):
        super().__init__()
        layers, ch = [], channels
        for w in widths:
            layers += [nn.Conv2d(ch, w, 3, 2, 1), nn.SiLU()]
            ch = w
        self.convs = nn.Sequential(*layers, nn.Flatten())
        h, w_ = level_sizes(height, len(widths))[-1], level_sizes(width, len(widths))[-1]
        self.num_classes = num_classes
        self.fc = nn.Sequential(nn.Linear(ch * h * w_ + num_classes, hidden), nn.SiLU())
        self.out = nn.Linear(hidden, 2 * latent)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.convs(x)
        if self.num_classes:
            h = torch.cat([h, F.one_hot(y, self.num_classes).to(h.dtype)], 1)
        mu, logvar = self.out(self.fc(h)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)


class Decoder(nn.Module):
    def __init__(self, channels: int, height: int, width: int, widths: list[int], hidden: int,
                 latent: int, num_classes: int):
        super().__init__()
        hs, ws = level_sizes(height, len(widths)), level_sizes(width, len(widths))
        self.top = (widths[-1], hs[-1], ws[-1])
        self.num_classes = num_classes
        self.fc = nn.Sequential(
            nn.Linear(latent + num_classes, hidden), nn.SiLU(),
            nn.Linear(hidden, widths[-1] * hs[-1] * ws[-1]), nn.SiLU(),
        )
        layers = []
        outs = [channels] + list(widths[:-1])
        for level in range(len(widths), 0, -1):
            pad = (hs[level - 1] - (2 * hs[level] - 1), ws[level - 1] - (2 * ws[level] - 1))
            layers.append(nn.ConvTranspose2d(widths[level - 1], outs[level - 1], 3, 2, 1, output_padding=pad))
            if level > 1:
                layers.append(nn.SiLU())
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)
        return self.convs(self.fc(z).view(-1, *self.top))
