"""Sample references: held-out procedural heads, for the demo and the web page's "try a sample".

They are rendered on demand (a fraction of a second each) rather than shipped as files, so they
always match the renderer the model was trained on.
"""

from pathlib import Path

from PIL import Image

# identity seeds no `dp3d synth` dataset draws for training (its seeds are 31-bit hashes of (seed, i))
SAMPLE_IDENTITIES = (424242, 515151, 606060, 737373)
SAMPLE_SMILES = (0.4, 0.0, 0.7, 0.2)


def sample_scene(i: int = 0):
    from ..head import Expression, Identity, build_scene

    return build_scene(Identity.sample(SAMPLE_IDENTITIES[i]), Expression(smile=SAMPLE_SMILES[i]))


def sample_reference(i: int = 0, size: int = 256) -> Image.Image:
    """Sample head i seen from the front (the EG3D default camera)."""
    from ..cameras import camera_label
    from ..head import render_scene

    return render_scene(sample_scene(i), camera_label(0.0, 0.0), size).pil()


def sample_truth(labels, size: int, i: int = 0) -> list[Image.Image]:
    """Sample head i at each camera: what a perfect model would draw."""
    from ..head import render_scene

    scene = sample_scene(i)
    return [render_scene(scene, label, size).pil() for label in labels]


def write_samples(folder: Path, size: int = 256) -> list[Path]:
    """sample_N.png for every sample head (for pages that list example files)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(len(SAMPLE_IDENTITIES)):
        path = folder / f"sample_{i}.png"
        sample_reference(i, size).save(path)
        paths.append(path)
    return paths
