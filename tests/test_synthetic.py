from pathlib import Path

import numpy as np
import pytest
import torch

from d2m_nas.errors import UserError
from d2m_nas.synthetic import FORMAT, VERSION, SyntheticSet


def _metadata(**extra):
    return {"dataset": "fake", "image_size": 8, "channels": 3, "num_classes": 4, "mean": [0.5] * 3,
            "std": [0.25] * 3, "ipc": 2, "method": "random", "seed": 3} | extra


def _set(**extra):
    g = torch.Generator().manual_seed(0)
    return SyntheticSet(torch.randn(8, 3, 8, 8, generator=g), torch.arange(4).repeat_interleave(2), _metadata(**extra))


def test_round_trip_keeps_images_labels_and_metadata(tmp_path):
    original = _set(source_indices=[5, 1, 9], run=Path("runs/x"), score=np.float32(0.5), ids=np.arange(3))
    path = original.save(tmp_path / "sub" / "synthetic.pt")
    assert path.is_file() and not list(tmp_path.rglob("*.tmp"))
    loaded = SyntheticSet.load(path)
    assert torch.equal(loaded.images, original.images) and torch.equal(loaded.labels, original.labels)
    assert loaded.images.dtype == torch.float32 and loaded.labels.dtype == torch.int64
    assert loaded.metadata["source_indices"] == [5, 1, 9] and loaded.metadata["seed"] == 3
    assert loaded.metadata["run"] == "runs/x" and loaded.metadata["score"] == 0.5  # made loadable plain types
    assert loaded.metadata["ids"] == [0, 1, 2]
    assert len(loaded) == 8


def test_load_accepts_a_run_directory(tmp_path):
    _set().save(tmp_path / "synthetic.pt")
    assert len(SyntheticSet.load(tmp_path)) == 8


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="synthetic set not found"):
        SyntheticSet.load(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="synthetic set not found"):
        SyntheticSet.load(tmp_path)  # a directory without synthetic.pt


def test_wrong_file_is_a_user_error(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a tensor file")
    with pytest.raises(UserError, match="not a readable synthetic-set file"):
        SyntheticSet.load(text)


def test_wrong_format_tag_is_a_user_error(tmp_path):
    other = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, other)
    with pytest.raises(UserError, match=f"no '{FORMAT}' format tag"):
        SyntheticSet.load(other)
    newer = tmp_path / "newer.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1}, newer)
    with pytest.raises(UserError, match="format version"):
        SyntheticSet.load(newer)


def test_damaged_payload_is_a_user_error(tmp_path):
    path = tmp_path / "damaged.pt"
    torch.save({"format": FORMAT, "version": VERSION, "images": torch.zeros(2, 3, 8, 8),
                "labels": torch.zeros(3, dtype=torch.long), "metadata": _metadata()}, path)
    with pytest.raises(UserError, match="damaged synthetic set"):
        SyntheticSet.load(path)
    torch.save({"format": FORMAT, "version": VERSION, "images": torch.zeros(2, 3, 8, 8)}, path)
    with pytest.raises(UserError, match="damaged synthetic set"):
        SyntheticSet.load(path)


def test_user_error_messages_are_one_line(tmp_path):
    with pytest.raises(UserError) as info:
        SyntheticSet.load(tmp_path / "nope.pt")
    assert "\n" not in str(info.value)


def test_construction_checks_metadata_shapes_and_labels():
    images, labels = torch.zeros(4, 3, 8, 8), torch.arange(4)
    meta = _metadata()
    with pytest.raises(ValueError, match="lacks ipc"):
        SyntheticSet(images, labels, {k: v for k, v in meta.items() if k != "ipc"})
    with pytest.raises(ValueError, match="do not pair up"):
        SyntheticSet(images, labels[:3], meta)
    with pytest.raises(ValueError, match="do not pair up"):
        SyntheticSet(images.to(torch.uint8), labels, meta)
    with pytest.raises(ValueError, match="metadata says"):
        SyntheticSet(torch.zeros(4, 3, 16, 16), labels, meta)
    with pytest.raises(ValueError, match="labels must lie in 0..3"):
        SyntheticSet(images, labels + 1, meta)
