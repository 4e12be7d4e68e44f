"""Datasets stored as image files: Tiny ImageNet's folder layout and any train/val class folders.

Images are decoded once (Pillow, a few threads; decoding releases the GIL) into one uint8 NHWC
array. They are never resized: every image must have the same square size, so the arrays are
exactly the pixels on disk.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from d2m_nas.errors import UserError
from d2m_nas.torchvision_compat import import_torchvision

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
TINYIMAGENET_FOLDER = "tiny-imagenet-200"
# The archive the Tiny ImageNet authors publish (CS231n). It could not be reached from the machine
# this was written on: the URL is untested; the code around it is tested with a stand-in.
TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def read_images(paths: list[Path], grayscale: bool | None = None, desc: str = "reading images") -> np.ndarray:
    """Decode image files into one uint8 (N, H, W, C) array, filled in place (no second copy).

    `grayscale=None` keeps one channel only when every image is grayscale, else gives RGB.
    Raises a one-line UserError naming the first file (in order) that is unreadable, not
    square, or not the size of the first.
    """
    if not paths:
        raise ValueError("read_images needs at least one path")
    height, width = _decode(paths[0], grayscale).shape[:2]
    if height != width:
        raise UserError(f"{paths[0]} is {width}x{height} but every image must be square; "
                        "d2m-nas does not resize, so crop or resize the images to one square size first")
    out = np.empty((len(paths), height, width, 1 if grayscale else 3), dtype=np.uint8)

    def fill(i: int) -> bool:
        array = _decode(paths[i], grayscale)
        if array.shape[:2] != (height, width):
            raise UserError(f"{paths[i]} is {array.shape[1]}x{array.shape[0]} but every image must be "
                            f"{width}x{height} like {paths[0]}; d2m-nas does not resize, so resize them first")
        out[i] = array  # a grayscale image fills all three channels when the output is RGB
        return array.shape[-1] == 1

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        is_gray = list(tqdm(pool.map(fill, range(len(paths))), total=len(paths), desc=desc, unit="img",
                            disable=len(paths) < 2000, leave=False))
    if grayscale is None and all(is_gray):
        return np.ascontiguousarray(out[..., :1])
    return out


def _decode(path: Path, grayscale: bool | None) -> np.ndarray:
    """One image as (H, W, 1) or (H, W, 3) uint8; None: keep grayscale images gray, others RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            gray = image.mode in ("1", "L", "LA", "I", "I;16", "F") if grayscale is None else grayscale
            array = np.asarray(image.convert("L" if gray else "RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UserError(f"{path} is not a readable image ({' '.join(str(exc).split())}); "
                        "remove or replace it") from None
    return array[..., None] if array.ndim == 2 else array


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_imagefolder(path: Path):
    """PATH/train/<class>/* and PATH/val/<class>/* (val is the test set). Classes are the sorted
    train folder names. Returns (x_train, y_train, x_test, y_test, class_names)."""
    train_dir, val_dir = path / "train", path / "val"
    for folder in (train_dir, val_dir):
        if not folder.is_dir():
            raise UserError(f"imagefolder:{path} has no {folder.name}/ folder; expected "
                            f"{path}/train/<class>/<image> and {path}/val/<class>/<image>")
    classes = [p.name for p in _class_folders(train_dir)]
    if not classes:
        raise UserError(f"{train_dir} holds no class folders; expected {train_dir}/<class>/<image>")
    unknown = sorted({p.name for p in _class_folders(val_dir)} - set(classes))
    if unknown:
        raise UserError(f"{val_dir} has class folders that {train_dir} lacks: {', '.join(unknown[:5])}")
    splits = []
    for folder in (train_dir, val_dir):
        files, labels = [], []
        for label, name in enumerate(classes):
            found = _image_files(folder / name) if (folder / name).is_dir() else []
            files += found
            labels += [label] * len(found)
        if not files:
            raise UserError(f"{folder} holds no images (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        splits.append((files, np.array(labels, dtype=np.int64)))
    (train_files, y_train), (val_files, y_val) = splits
    x_all = read_images(train_files + val_files, desc=f"reading {path.name}")
    return x_all[:len(train_files)], y_train, x_all[len(train_files):], y_val, classes


def tinyimagenet_folder(root: Path) -> Path:
    return root / "tinyimagenet" / TINYIMAGENET_FOLDER


def read_tinyimagenet(folder: Path):
    """The official `tiny-imagenet-200` layout: train/<wnid>/images/*.JPEG for training and
    val/images/*.JPEG labelled by val/val_annotations.txt as the test set (the official test
    images have no labels). Classes are the sorted wnids, as torchvision's ImageFolder orders them.
    Returns (x_train, y_train, x_test, y_test, class_names)."""
    train_dir, annotations = folder / "train", folder / "val" / "val_annotations.txt"
    if not train_dir.is_dir() or not annotations.is_file():
        raise UserError(f"{folder} is not a complete tiny-imagenet-200 folder: it needs train/<wnid>/images/ "
                        "and val/val_annotations.txt; unzip tiny-imagenet-200.zip there again")
    wnids = [p.name for p in _class_folders(train_dir)]
    if not wnids:
        raise UserError(f"{train_dir} holds no class folders; unzip tiny-imagenet-200.zip there again")
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train_files, y_train = [], []
    for wnid in wnids:
        found = _image_files(train_dir / wnid / "images")
        train_files += found
        y_train += [index[wnid]] * len(found)
    val_files, y_val = [], []
    for line_number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise UserError(f"{annotations}:{line_number}: expected '<file>\\t<wnid>...' with a wnid of train/, "
                            f"got {line[:60]!r}")
        val_files.append(folder / "val" / "images" / fields[0])
        y_val.append(index[fields[1]])
    x_all = read_images(train_files + val_files, grayscale=False, desc="reading tinyimagenet")
    names = _tinyimagenet_words(folder, wnids)
    return (x_all[:len(train_files)], np.array(y_train, dtype=np.int64),
            x_all[len(train_files):], np.array(y_val, dtype=np.int64), names)


def _tinyimagenet_words(folder: Path, wnids: list[str]) -> list[str]:
    """Readable class names from words.txt (first synonym); the wnid where it is missing."""
    words = {}
    if (folder / "words.txt").is_file():
        for line in (folder / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    return [words.get(wnid) or wnid for wnid in wnids]


def download_tinyimagenet(root: Path) -> None:
    """Fetch and unzip the official archive into <data-root>/tinyimagenet/ (untested here: no network)."""
    utils = import_torchvision().datasets.utils
    target = root / "tinyimagenet"
    try:
        utils.download_and_extract_archive(TINYIMAGENET_URL, download_root=str(target))
    except Exception as exc:  # noqa: BLE001 - URL, HTTP and archive errors alike
        raise UserError(f"downloading {TINYIMAGENET_URL} into {target} failed ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())}); unzip tiny-imagenet-200.zip there yourself") from None
