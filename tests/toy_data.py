"""A tiny training set for the training tests: subjects are coloured discs whose position follows the camera."""

import torch


class ToySet(torch.utils.data.Dataset):
    """Enough structure to learn; `seen` records the indices this process served."""

    def __init__(self, n=4, size=64, views=2):
        self.n, self.size, self.views, self.seen = n, size, views, []

    def __len__(self):
        return self.n

    def image(self, subject, cam):
        g = torch.Generator().manual_seed(subject)
        colour = torch.rand(3, 1, 1, generator=g) * 2 - 1
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, self.size), torch.linspace(-1, 1, self.size), indexing="ij")
        disc = ((xx - 0.4 * cam) ** 2 + yy**2 < 0.3).float()
        return disc * colour + (1 - disc) * -0.5

    def __getitem__(self, i):
        self.seen.append(int(i))
        cams = torch.linspace(-1, 1, self.views)
        return {"image": self.image(i, 0.0), "reference": self.image(i, 0.0), "target": self.image(i, 0.5),
                "condition": self.image(i + 100, 0.5), "targets": torch.stack([self.image(i, float(c)) for c in cams]),
                "conditions": torch.stack([self.image(i + 100, float(c)) for c in cams])}
