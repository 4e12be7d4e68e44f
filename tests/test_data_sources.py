"""Every dataset source's loading path, on tiny files written in the real formats, so the
actual readers (torchvision's, NumPy's, Pillow's) run; and the one-line errors on bad input."""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from d2m_nas.data import list_datasets, load_dataset
from d2m_nas.data.catalog import CATALOG, CIFAR100_CLASSES
from d2m_nas.errors import UserError
from d2m_nas.torchvision_compat import import_torchvision

datasets = import_torchvision().datasets


def images(n: int, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Random NHWC uint8 images; random content makes any transpose or channel mix-up visible."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def as_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


# ----- NumPy arrays ------------------------------------------------------------------------------

def write_npz(path, **overrides):
    arrays = dict(x_train=images(20, 8), y_train=np.arange(20) % 10, x_test=images(10, 8, seed=1),
                  y_test=np.arange(10) % 10)
    arrays.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def test_cifar10_npz_loads_as_uint8_nchw(isolated_data_root):
    arrays = write_npz(isolated_data_root / "cifar10" / "cifar10.npz")
    ds = load_dataset("cifar10")
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape == (20, 3, 8, 8)
    assert torch.equal(ds.x_train, as_nchw(arrays["x_train"])) and torch.equal(ds.x_test, as_nchw(arrays["x_test"]))
    assert ds.y_train.dtype == torch.int64 and ds.y_train.tolist() == arrays["y_train"].tolist()
    assert ds.class_names[0] == "airplane" and ds.num_classes == 10
    assert ds.mean == CATALOG["cifar10"].mean and ds.source.endswith("cifar10.npz")


@pytest.mark.parametrize("name", ["cifar100", "svhn", "mnist", "fashion-mnist", "tinyimagenet"])
def test_every_dataset_accepts_its_npz(isolated_data_root, name):
    channels = 1 if "mnist" in name else 3
    arrays = write_npz(isolated_data_root / name / f"{name}.npz", x_train=images(20, 8, channels),
                       x_test=images(10, 8, channels, seed=1))
    ds = load_dataset(name)
    assert ds.channels == channels and ds.x_train.shape == (20, channels, 8, 8)
    assert torch.equal(ds.x_train, as_nchw(arrays["x_train"]))
    assert ds.num_classes == {"cifar100": 100, "tinyimagenet": 200}.get(name, 10)
    assert len(ds.mean) == channels and ds.mean == CATALOG[name].mean


def test_npz_grayscale_without_channel_axis_and_its_own_class_names(isolated_data_root):
    names = np.array([f"digit{i}" for i in range(10)])
    write_npz(isolated_data_root / "mnist" / "mnist.npz", x_train=images(20, 8, 1)[..., 0],
              x_test=images(10, 8, 1)[..., 0], class_names=names)
    ds = load_dataset("mnist")
    assert ds.x_train.shape == (20, 1, 8, 8) and ds.class_names == names.tolist()


def test_npz_is_preferred_over_torchvision_files(isolated_data_root):
    write_npz(isolated_data_root / "cifar10" / "cifar10.npz")
    (isolated_data_root / "cifar10" / "cifar-10-batches-py").mkdir()
    (isolated_data_root / "cifar10" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"broken")
    assert load_dataset("cifar10").source.endswith("cifar10.npz")


@pytest.mark.parametrize("overrides, expected", [
    ({"y_test": None}, "lacks the arrays y_test"),
    ({"x_train": images(20, 8).astype(np.float32)}, "must be uint8"),
    ({"x_train": images(20, 8, channels=4)}, "1 or 3 channels"),
    ({"x_train": np.zeros((20, 8, 6, 3), np.uint8)}, "square"),
    ({"y_train": np.arange(20) % 10 + 0.5}, "integer label"),
    ({"y_train": np.arange(19) % 10}, "one integer label per image (20)"),
    ({"y_train": np.arange(20)}, "labels must lie in 0..9"),
    ({"x_test": images(10, 16)}, "but test images are"),
])
def test_wrong_npz_contents_are_one_line_errors(isolated_data_root, overrides, expected):
    path = isolated_data_root / "cifar10" / "cifar10.npz"
    write_npz(path, **overrides)
    with pytest.raises(UserError) as error:
        load_dataset("cifar10")
    message = assert_one_line(error)
    assert expected in message and str(path) in message


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_npz_is_a_one_line_error(isolated_data_root, damage):
    path = isolated_data_root / "cifar10" / "cifar10.npz"
    write_npz(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"this is not a zip file")
    with pytest.raises(UserError) as error:
        load_dataset("cifar10")
    assert f"{path} is not a readable .npz file" in assert_one_line(error)


# ----- torchvision formats -----------------------------------------------------------------------

def write_cifar(root, monkeypatch, hundred: bool = False):
    """CIFAR python pickles as the official archives hold them (planar RGB rows of 3072 bytes),
    with torchvision's MD5 table pointed at these files so its integrity check passes."""
    cls = datasets.CIFAR100 if hundred else datasets.CIFAR10
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    num_classes = 100 if hundred else 10
    label_key = "fine_labels" if hundred else "labels"
    train_x, test_x = images(2 * num_classes, 32), images(num_classes, 32, seed=1)
    train_y, test_y = np.arange(2 * num_classes) % num_classes, np.arange(num_classes)[::-1] % num_classes
    train_names = [name for name, _ in cls.train_list]
    chunks = np.array_split(np.arange(len(train_x)), len(train_names))

    def dump(name, x, y):
        entry = {"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), label_key: [int(v) for v in y]}
        (folder / name).write_bytes(pickle.dumps(entry))
        return [name, md5(folder / name)]

    train_list = [dump(name, train_x[idx], train_y[idx]) for name, idx in zip(train_names, chunks)]
    test_list = [dump(cls.test_list[0][0], test_x, test_y)]
    meta_key = cls.meta["key"]
    names = CIFAR100_CLASSES if hundred else ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse",
                                               "ship", "truck"]
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps({meta_key: names}))
    monkeypatch.setattr(cls, "train_list", train_list)
    monkeypatch.setattr(cls, "test_list", test_list)
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / cls.meta["filename"])})
    return train_x, train_y, test_x, test_y


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_torchvision_pickles(isolated_data_root, monkeypatch, name):
    train_x, train_y, test_x, test_y = write_cifar(isolated_data_root / name, monkeypatch, name == "cifar100")
    ds = load_dataset(name)
    assert torch.equal(ds.x_train, as_nchw(train_x)) and torch.equal(ds.x_test, as_nchw(test_x))
    assert ds.y_train.tolist() == train_y.tolist() and ds.y_test.tolist() == test_y.tolist()
    assert ds.num_classes == len(ds.class_names) == (100 if name == "cifar100" else 10)
    assert ds.source.endswith("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if name == "cifar100":
        assert ds.class_names[:2] == ["apple", "aquarium_fish"] and ds.mean == (0.5071, 0.4866, 0.4409)


def test_corrupt_cifar_pickle_is_a_one_line_error(isolated_data_root, monkeypatch):
    write_cifar(isolated_data_root / "cifar10", monkeypatch)
    (isolated_data_root / "cifar10" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04truncated")
    with pytest.raises(UserError) as error:  # the MD5 check of torchvision catches it
        load_dataset("cifar10")
    message = assert_one_line(error)
    assert "torchvision could not read cifar10" in message and "--download" in message


def test_unparsable_file_with_matching_md5_is_a_one_line_error(isolated_data_root, monkeypatch):
    write_cifar(isolated_data_root / "cifar10", monkeypatch)
    batch = isolated_data_root / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(b"\x80\x04truncated")
    monkeypatch.setattr(datasets.CIFAR10, "train_list",
                        [[name, md5(batch) if name == "data_batch_1" else digest]
                         for name, digest in datasets.CIFAR10.train_list])
    with pytest.raises(UserError) as error:  # now pickle itself fails
        load_dataset("cifar10")
    assert "could not read cifar10" in assert_one_line(error)


def write_idx(path, array: np.ndarray):
    """MNIST's idx format: big-endian magic (0x08 = unsigned byte, then the rank), dims, data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">i", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_family_from_idx_files(isolated_data_root, name, folder):
    raw = isolated_data_root / name / folder / "raw"
    train_x, test_x = images(12, 28, 1)[..., 0], images(5, 28, 1, seed=2)[..., 0]
    train_y, test_y = np.arange(12) % 10, np.array([9, 8, 7, 6, 5])
    write_idx(raw / "train-images-idx3-ubyte", train_x)
    write_idx(raw / "train-labels-idx1-ubyte", train_y)
    write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    ds = load_dataset(name)
    assert ds.channels == 1 and ds.x_train.shape == (12, 1, 28, 28)
    assert torch.equal(ds.x_train[:, 0], torch.from_numpy(train_x))
    assert torch.equal(ds.x_test[:, 0], torch.from_numpy(test_x))
    assert ds.y_test.tolist() == test_y.tolist() and len(ds.mean) == 1
    assert ds.class_names[0] == ("0" if name == "mnist" else "T-shirt/top")


def test_svhn_from_mat_files(isolated_data_root, monkeypatch):
    from scipy.io import savemat

    folder = isolated_data_root / "svhn"
    folder.mkdir()
    split_list = {}
    written = {}
    for split, n in (("train", 12), ("test", 6)):
        x = images(n, 32, seed=n)
        digits = np.arange(n) % 10
        # SVHN stores X as (32, 32, 3, N) and the digit 0 as label 10
        labels = np.where(digits == 0, 10, digits)[:, None]
        savemat(folder / f"{split}_32x32.mat", {"X": x.transpose(1, 2, 3, 0), "y": labels})
        url, filename, _ = datasets.SVHN.split_list[split]
        split_list[split] = [url, filename, md5(folder / filename)]
        written[split] = (x, digits)
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)
    ds = load_dataset("svhn")
    assert torch.equal(ds.x_train, as_nchw(written["train"][0]))
    assert torch.equal(ds.x_test, as_nchw(written["test"][0]))
    assert ds.y_train.tolist() == written["train"][1].tolist() and ds.num_classes == 10


def test_download_flag_is_passed_to_torchvision_and_failures_are_one_line(isolated_data_root, monkeypatch):
    """--download reaches torchvision (no network here, so the download itself fails) and never
    happens without it."""
    calls = []

    def no_network(*args, **kwargs):
        calls.append(kwargs.get("url") or args[0])
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(datasets.utils, "urlopen", no_network, raising=False)
    monkeypatch.setattr(datasets.cifar, "download_and_extract_archive", no_network)
    with pytest.raises(UserError) as error:
        load_dataset("cifar10", download=False)
    assert not calls and "not found" in str(error.value)
    with pytest.raises(UserError) as error:
        load_dataset("cifar10", download=True)
    message = assert_one_line(error)
    assert calls and "downloading cifar10 into" in message and "Name or service not known" in message


# ----- Tiny ImageNet and image folders -----------------------------------------------------------

def save_image(path, array: np.ndarray):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def write_tinyimagenet(folder):
    """The official layout, with three classes and one grayscale training image (as the real set has)."""
    wnids = ["n02", "n01", "n03"]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\ttabby, tabby cat\nn99\tunused\n")
    for i, wnid in enumerate(wnids):
        for j in range(2):
            channels = 1 if (i, j) == (0, 0) else 3
            image = images(1, 64, channels, seed=10 * i + j)[0]
            save_image(folder / "train" / wnid / "images" / f"{wnid}_{j}.JPEG", image)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    annotations = []
    for k, wnid in enumerate(["n03", "n01", "n02", "n03"]):
        save_image(folder / "val" / "images" / f"val_{k}.JPEG", images(1, 64, seed=100 + k)[0])
        annotations.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")


def test_tinyimagenet_from_its_folder_layout(isolated_data_root):
    write_tinyimagenet(isolated_data_root / "tinyimagenet" / "tiny-imagenet-200")
    ds = load_dataset("tinyimagenet")
    assert ds.x_train.shape == (6, 3, 64, 64) and ds.x_test.shape == (4, 3, 64, 64)
    assert ds.class_names == ["goldfish", "tabby", "n03"]  # sorted wnids, names from words.txt
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2] and ds.y_test.tolist() == [2, 0, 1, 2]
    gray = ds.x_train[2]  # n02's first image was saved grayscale and is now three equal channels
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert ds.mean == (0.485, 0.456, 0.406)


def test_tinyimagenet_download_unpacks_into_the_data_root(isolated_data_root, monkeypatch):
    """The URL cannot be reached here; this checks what happens around the download."""
    fetched = []

    def fake_download_and_extract(url, download_root, **kwargs):
        fetched.append(url)
        write_tinyimagenet(Path(download_root) / "tiny-imagenet-200")

    monkeypatch.setattr(datasets.utils, "download_and_extract_archive", fake_download_and_extract)
    with pytest.raises(UserError):
        load_dataset("tinyimagenet")
    assert not fetched
    assert load_dataset("tinyimagenet", download=True).x_train.shape[0] == 6
    assert fetched == ["http://cs231n.stanford.edu/tiny-imagenet-200.zip"]


def test_tinyimagenet_with_a_bad_annotation_is_a_one_line_error(isolated_data_root):
    folder = isolated_data_root / "tinyimagenet" / "tiny-imagenet-200"
    write_tinyimagenet(folder)
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(UserError) as error:
        load_dataset("tinyimagenet")
    assert "val_annotations.txt:1" in assert_one_line(error)


def write_imagefolder(path, channels=3, size=8):
    written = {}
    for split, per_class in (("train", 3), ("val", 2)):
        for c, name in enumerate(["cat", "dog"]):
            for k in range(per_class):
                array = images(1, size, channels, seed=100 * c + 10 * k + len(split))[0]
                save_image(path / split / name / f"{k}.png", array)
                written.setdefault(split, []).append((array, c))
    (path / "train" / "cat" / ".DS_Store").write_bytes(b"not an image")
    (path / "train" / "cat" / "notes.txt").write_text("ignored")
    return written


@pytest.mark.parametrize("channels", [3, 1])
def test_imagefolder_reads_train_and_val_class_folders(tmp_path, channels):
    written = write_imagefolder(tmp_path / "pets", channels)
    ds = load_dataset(f"imagefolder:{tmp_path / 'pets'}")
    assert ds.name == f"imagefolder:{tmp_path / 'pets'}" and ds.class_names == ["cat", "dog"]
    assert ds.x_train.shape == (6, channels, 8, 8) and ds.x_test.shape == (4, channels, 8, 8)
    expected = np.stack([a for a, _ in written["train"]])
    assert torch.equal(ds.x_train, as_nchw(expected))  # PNG is lossless
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1] and ds.y_test.tolist() == [0, 0, 1, 1]
    pixels = expected.reshape(-1, channels) / 255
    assert np.allclose(ds.mean, pixels.mean(0), atol=1e-4) and np.allclose(ds.std, pixels.std(0), atol=1e-4)


def test_imagefolder_mixed_gray_and_colour_becomes_rgb(tmp_path):
    write_imagefolder(tmp_path / "pets")
    save_image(tmp_path / "pets" / "train" / "dog" / "gray.png", images(1, 8, 1)[0])
    assert load_dataset(f"imagefolder:{tmp_path / 'pets'}").x_train.shape == (7, 3, 8, 8)


@pytest.mark.parametrize("bad, expected", [
    ("train/dog/odd.png", "is 9x9 but every image must be 8x8"),
    ("val/cat/wide.png", "is 8x6 but every image must be 8x8"),
    ("train/dog/broken.png", "is not a readable image"),
])
def test_imagefolder_bad_image_names_the_file(tmp_path, bad, expected):
    write_imagefolder(tmp_path / "pets")
    path = tmp_path / "pets" / bad
    if "broken" in bad:
        path.write_bytes(b"not a png")
    else:
        save_image(path, np.zeros((6, 8, 3) if "wide" in bad else (9, 9, 3), np.uint8))
    with pytest.raises(UserError) as error:
        load_dataset(f"imagefolder:{tmp_path / 'pets'}")
    message = assert_one_line(error)
    assert str(path) in message and expected in message


def test_imagefolder_non_square_images_are_refused(tmp_path):
    for split in ("train", "val"):
        save_image(tmp_path / "x" / split / "a" / "0.png", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(UserError) as error:
        load_dataset(f"imagefolder:{tmp_path / 'x'}")
    assert "must be square" in assert_one_line(error)


def test_imagefolder_layout_errors(tmp_path):
    write_imagefolder(tmp_path / "pets")
    save_image(tmp_path / "pets" / "val" / "bird" / "0.png", images(1, 8)[0])
    with pytest.raises(UserError) as error:
        load_dataset(f"imagefolder:{tmp_path / 'pets'}")
    assert "class folders that" in assert_one_line(error) and "bird" in str(error.value)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(UserError) as error:
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    assert "has no val/ folder" in assert_one_line(error)


# ----- unknown names and missing data ------------------------------------------------------------

def test_unknown_dataset_lists_the_known_names():
    with pytest.raises(UserError) as error:
        load_dataset("cifar11")
    message = assert_one_line(error)
    for name in ("cifar10", "cifar100", "svhn", "mnist", "fashion-mnist", "tinyimagenet", "fake", "imagefolder:PATH"):
        assert name in message
    assert set(list_datasets()) >= {"cifar10", "cifar100", "svhn", "mnist", "fashion-mnist", "tinyimagenet"}


@pytest.mark.parametrize("name, native", [
    ("cifar10", "cifar10/cifar-10-batches-py/{data_batch_1"),
    ("cifar100", "cifar100/cifar-100-python/{train,test,meta}"),
    ("svhn", "svhn/{train_32x32.mat,test_32x32.mat}"),
    ("mnist", "mnist/MNIST/raw/{train-images-idx3-ubyte"),
    ("fashion-mnist", "fashion-mnist/FashionMNIST/raw/{"),
    ("tinyimagenet", "tinyimagenet/tiny-imagenet-200/{train,val}"),
])
def test_missing_data_says_where_it_looked_and_how_to_supply_it(isolated_data_root, name, native):
    with pytest.raises(UserError) as error:
        load_dataset(name)
    message = assert_one_line(error)
    assert f"{isolated_data_root}/{name}/{name}.npz" in message and f"{isolated_data_root}/{native}" in message
    assert "--data-root DIR" in message and "D2M_NAS_DATA" in message and "--download" in message
    assert not any(isolated_data_root.iterdir())  # nothing was created, nothing was fetched


def test_channel_mean_std_is_exact_across_chunks():
    from d2m_nas.data.sources import channel_mean_std

    x = images(50, 5, seed=9)
    mean, std = channel_mean_std(x, chunk=7)
    pixels = x.reshape(-1, 3) / 255
    assert np.allclose(mean, pixels.mean(0), atol=5e-5) and np.allclose(std, pixels.std(0), atol=5e-5)
    assert channel_mean_std(np.zeros((3, 4, 4, 1), np.uint8)) == ((0.0,), (0.001,))
