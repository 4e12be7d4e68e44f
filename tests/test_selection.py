import pytest
import torch

from d2m_nas import cli
from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.errors import UserError
from d2m_nas.random_subset import random_real_subset
from d2m_nas.selection import embeddings, feature_nets, herd, herding_select, real_reference
from d2m_nas.synthetic import SyntheticSet


def test_herd_greedily_tracks_the_target_mean():
    features = torch.tensor([[0.0], [10.0], [-10.0], [1.0]])
    # 1st: 0 (error 0); 2nd: (0 + 1) / 2 beats ±5; 3rd: (1 - 10) / 3 beats (1 + 10) / 3
    assert herd(features, torch.tensor([0.0]), 3) == [0, 3, 2]
    assert sorted(herd(features, torch.tensor([0.0]), 4)) == [0, 1, 2, 3]  # distinct, never repeated


def _class_mean_error(synthetic: SyntheticSet, reference: SyntheticSet, nets) -> float:
    return sum((embeddings(synthetic.images[synthetic.labels == c], nets, "cpu").mean(0)
                - embeddings(reference.images[reference.labels == c], nets, "cpu").mean(0)).pow(2).sum().item()
               for c in range(10))


def test_herding_chooses_ipc_per_class_from_the_pool_closer_to_the_real_means():
    fake = make_fake_dataset(train_per_class=20, test_per_class=2)
    pool = random_real_subset(fake, 8, seed=0, val_per_class=5)
    reference = real_reference(fake, seed=0, val_per_class=5)
    assert torch.bincount(reference.labels).tolist() == [15] * 10  # all of the training part here
    herded = herding_select(pool, 3, reference, seed=0, nets=2)
    assert torch.bincount(herded.labels, minlength=10).tolist() == [3] * 10
    assert set(herded.metadata["source_indices"]) <= set(pool.metadata["source_indices"])
    assert torch.equal(herded.labels, fake.y_train[torch.tensor(herded.metadata["source_indices"])])
    meta = herded.metadata
    assert (meta["ipc"], meta["selection"], meta["pool_per_class"], meta["selection_nets"]) == (3, "herding", 8, 2)
    assert torch.equal(herding_select(pool, 3, reference, seed=0, nets=2).images, herded.images)  # reproducible
    first_three = random_real_subset(fake, 3, seed=0, val_per_class=5)  # a random IPC-3 set (a prefix of the pool)
    nets = feature_nets(pool, 2, 0, "cpu")
    assert _class_mean_error(herded, reference, nets) < _class_mean_error(first_three, reference, nets)
    with pytest.raises(UserError, match="at least --ipc 9"):
        herding_select(pool, 9, reference)


def test_generate_select_herding_writes_the_chosen_set(tmp_path, capsys):
    out = tmp_path / "h"
    assert cli.main(["generate", "--method", "random", "--dataset", "fake", "--ipc", "2", "--select", "herding",
                     "--pool", "5", "--val-per-class", "250", "--out", str(out), "--device", "cpu"]) == 0
    assert "20 images (2 per class, herded from 5" in capsys.readouterr().out
    synthetic = SyntheticSet.load(out / "synthetic.pt")
    assert torch.bincount(synthetic.labels).tolist() == [2] * 10 and synthetic.metadata["selection"] == "herding"
    assert cli.main(["generate", "--method", "random", "--dataset", "fake", "--ipc", "6", "--select", "herding",
                     "--pool", "5", "--out", str(tmp_path / "bad")]) == 2
    assert "--pool 5 must be at least --ipc 6" in capsys.readouterr().err
