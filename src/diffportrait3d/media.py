"""Reading user images and writing images, contact sheets and videos (atomically)."""

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path
from .errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".gif", ".mov", ".avi", ".mkv", ".webm"}


def open_rgb(path: str | Path) -> Image.Image:
    """Open any image file as 8-bit RGB (RGBA, grayscale, palette and 16-bit are converted)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"expected an image file, got a folder: {path}")
    try:
        with warnings.catch_warnings():  # the size check below says it in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)  # reads the header only
        if img.width * img.height > Image.MAX_IMAGE_PIXELS:
            raise UserError(f"{path} is {img.width}x{img.height} pixels, more than {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; "
                            "downscale it first (the model works at 512x512 or less)")
        img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
        raise UserError(f"not a readable image: {path} ({e.__class__.__name__})") from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB, upright: every image the project reads passes here once (files, web uploads,
    datasets), so a phone photo's EXIF Orientation is applied in one place. exif_transpose drops the
    tag, so a second pass changes nothing."""
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img) if img.getexif().get(0x0112, 1) != 1 else img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits instead of clipping
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # composite transparency over white, the usual portrait backdrop
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    return img.convert("RGB")


def image_to_tensor(img, size: int | None = None) -> torch.Tensor:
    """PIL image, path or tensor -> float tensor (3, H, W) in [-1, 1], resized to size x size (no crop)."""
    if isinstance(img, (str, Path)):
        img = open_rgb(img)
    if isinstance(img, Image.Image):
        img = to_rgb(img)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    if isinstance(img, np.ndarray):
        img = torch.from_numpy(img)
    if isinstance(img, torch.Tensor):
        t = img.detach().float()
        if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            raise UserError(f"image tensors must be (C, H, W) with C in 1, 3, 4 and values in [-1, 1]; got {tuple(t.shape)}")
        t = t[:3] if t.shape[0] != 1 else t.expand(3, -1, -1)
        if size is not None and t.shape[-2:] != (size, size):
            t = torch.nn.functional.interpolate(t[None], size=(size, size), mode="bicubic", align_corners=False)[0]
        return t.clamp(-1, 1)
    raise UserError(f"unsupported image type {type(img).__name__}: pass a path, a PIL image or a (3, H, W) tensor")


def images_to_tensor(images, size: int) -> torch.Tensor:
    """A list of images (or one image) -> (N, 3, size, size) in [-1, 1]."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return torch.stack([image_to_tensor(x, size) for x in images])
    if not isinstance(images, (list, tuple)):
        images = [images]
    if len(images) == 0:
        raise UserError("no images given")
    return torch.stack([image_to_tensor(x, size) for x in images])


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> PIL."""
    arr = ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images (.png/.jpg/...) in folder {folder}")
    return files


def read_video_frames(path: str | Path, count: int | None = None) -> list[Image.Image]:
    """Frames of a video file, `count` of them sampled evenly (all when None)."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}")
    try:
        frames = iio.imread(path, index=None)
    except Exception as e:  # imageio raises many types for unreadable media
        raise UserError(f"not a readable video: {path} ({e.__class__.__name__})") from None
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if count is not None and count < len(frames):
        idx = np.linspace(0, len(frames) - 1, count).round().astype(int)
        frames = frames[idx]
    return [to_rgb(Image.fromarray(f)) for f in frames]


def grid(rows: list[list[Image.Image]], pad: int = 2) -> Image.Image:
    """Tile rows of equally sized images into one white-padded sheet."""
    w, h = rows[0][0].size
    ncol = max(len(r) for r in rows)
    sheet = Image.new("RGB", (ncol * (w + pad) + pad, len(rows) * (h + pad) + pad), (255, 255, 255))
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            sheet.paste(im.resize((w, h)), (pad + j * (w + pad), pad + i * (h + pad)))
    return sheet


def save_image(img: Image.Image, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        img.save(tmp, format=_pil_format(Path(path)))
    return Path(path)


def save_video(frames: list[Image.Image], path: str | Path, fps: int = 8) -> Path:
    """Write an .mp4 (H.264 via imageio-ffmpeg) or .gif, atomically."""
    import imageio.v3 as iio

    path = Path(path)
    arrs = [np.asarray(f.convert("RGB")) for f in frames]
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            iio.imwrite(tmp, arrs, extension=".gif", duration=int(1000 / fps), loop=0)
        else:
            # macro_block_size=1 keeps small frames at their size (the writer's yuv420p needs even sides)
            iio.imwrite(tmp, [a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2] for a in arrs], extension=path.suffix.lower(),
                        fps=fps, codec="libx264", macro_block_size=1)
    return path


def _pil_format(path: Path) -> str:
    ext = path.suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF"}.get(ext, "PNG")
