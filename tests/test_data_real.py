"""The real CIFAR-10 under the data root (skips when $D2M_NAS_DATA does not hold it)."""

from __future__ import annotations

import pytest
import torch

from d2m_nas.data import load_dataset, split_train_val


def test_real_cifar10_shapes_labels_and_balance(shared_data_root):
    if not (shared_data_root / "cifar10").is_dir():
        pytest.skip(f"no cifar10/ under {shared_data_root}")
    ds = load_dataset("cifar10", shared_data_root)
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.x_train.dtype == torch.uint8 and ds.y_train.dtype == torch.int64
    assert ds.y_train.bincount().tolist() == [5000] * 10 and ds.y_test.bincount().tolist() == [1000] * 10
    assert ds.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    # the normalisation constants fit the data: normalised training pixels have mean ~0, std ~1
    x = ds.normalize(ds.x_train[::10])
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.02 and (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.02
    train_idx, val_idx = split_train_val(ds.y_train, 200, seed=0)
    assert len(val_idx) == 2000 and len(train_idx) == 48000
