"""The seeded, class-balanced validation split and the per-class sampler."""

from __future__ import annotations

import pytest
import torch

from d2m_nas.data import sample_per_class, split_train_val
from d2m_nas.errors import UserError


@pytest.fixture
def labels() -> torch.Tensor:
    # unequal class sizes (30, 25, 40), shuffled, so balance is not an accident of the layout
    y = torch.cat([torch.full((n,), c) for c, n in enumerate((30, 25, 40))])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(5))]


def test_split_is_disjoint_complete_and_balanced(labels):
    train_idx, val_idx = split_train_val(labels, val_per_class=7, seed=0)
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(len(labels)))
    assert labels[val_idx].bincount().tolist() == [7, 7, 7]
    assert labels[train_idx].bincount().tolist() == [23, 18, 33]


def test_split_is_seeded_and_differs_by_seed(labels):
    first = split_train_val(labels, 7, seed=3)
    again = split_train_val(labels, 7, seed=3)
    other = split_train_val(labels, 7, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[1], other[1])


def test_split_does_not_depend_on_label_dtype_or_copy(labels):
    assert torch.equal(split_train_val(labels, 5, 1)[1], split_train_val(labels.to(torch.int32).clone(), 5, 1)[1])


def test_split_larger_than_a_class_is_a_one_line_error(labels):
    with pytest.raises(UserError) as error:
        split_train_val(labels, val_per_class=25, seed=0)
    assert "class 1 has 25 training images" in str(error.value) and "--val-per-class" in str(error.value)


def test_sample_per_class_draws_only_from_the_pool(labels):
    train_idx, val_idx = split_train_val(labels, 7, seed=0)
    picked = sample_per_class(labels, per_class=4, seed=1, among=train_idx)
    assert labels[picked].bincount().tolist() == [4, 4, 4]
    assert set(picked.tolist()) <= set(train_idx.tolist())
    assert torch.equal(picked, sample_per_class(labels, 4, 1, among=train_idx))
    assert not torch.equal(picked, sample_per_class(labels, 4, 2, among=train_idx))
