"""What every training stage provides to the loop (training/loop.py)."""

import contextlib

import torch


class Stage:
    """A stage owns its networks, says which parameters train, computes the loss of a batch and
    exports what it trained. Subclasses set `name` and `batch_kind` (what the dataset yields)."""

    name = ""
    batch_kind = "pairs"  # images | pairs | groups | camera_pairs
    resolution = 64       # image side the dataset is read at
    latents = None        # a LatentCache, attached by training/latent_cache.py for stages with a `latent_vae`

    def trainable(self) -> torch.nn.Module:
        """The module holding every trained parameter (wrapped by accelerate)."""
        raise NotImplementedError

    def parameters(self) -> list[torch.nn.Parameter]:
        """The parameters handed to the optimiser (those that can influence the loss)."""
        return [p for p in self.trainable().parameters() if p.requires_grad]

    def frozen(self) -> list[torch.nn.Module]:
        """Modules used but not trained; the tests check that they stay bitwise unchanged."""
        return []

    def to(self, device, dtype=None):
        for m in [self.trainable(), *self.frozen()]:
            m.to(device)
            if dtype is not None:
                m.to(dtype)
        return self

    def context(self):
        """Entered around forward AND backward (recomputation under gradient checkpointing)."""
        return contextlib.nullcontext()

    def loss(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    @torch.no_grad()
    def samples(self, batch: dict, steps: int) -> list[list]:
        """Rows of PIL images for the sample grid."""
        return []

    def export(self, folder) -> None:
        raise NotImplementedError


def freeze(*modules):
    for m in modules:
        m.requires_grad_(False)
        m.eval()
