import csv

import pytest
from helpers.data import write_tone

from clusterlight.data import (
    AudioDataModule,
    DataError,
    ESC50Source,
    FolderSource,
    ManifestSource,
    UrbanSound8KSource,
)


def _write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_manifest_with_fold_and_group(tmp_path):
    _write_csv(
        tmp_path / "m.csv",
        ["path", "label", "fold", "source_id"],
        [["a/x.wav", "dog", "1", "s1"], ["b/y.wav", "cat", "2", "s2"]],
    )
    clips = ManifestSource(str(tmp_path), "m.csv", group_column="source_id").clips()
    assert [c.label for c in clips] == ["dog", "cat"]
    assert clips[0].path == str(tmp_path / "a/x.wav") and clips[0].fold == "1" and clips[1].group == "s2"


def test_manifest_split_column_and_optional_columns(tmp_path):
    _write_csv(tmp_path / "manifest.csv", ["path", "label", "split"], [["x.wav", "dog", "train"]])
    (clip,) = ManifestSource(str(tmp_path)).clips()
    assert clip.fold == "train" and clip.group is None


def test_manifest_missing_column_names_file_and_column(tmp_path):
    _write_csv(tmp_path / "manifest.csv", ["file", "label"], [["x.wav", "dog"]])
    with pytest.raises(DataError, match=r"manifest\.csv lacks column\(s\) \['path'\]"):
        ManifestSource(str(tmp_path)).clips()


def test_manifest_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ManifestSource(str(tmp_path), "nope.csv").clips()


def test_urbansound8k_layout(tmp_path):
    header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    _write_csv(
        tmp_path / "metadata/UrbanSound8K.csv",
        header,
        [["100-3-0-0.wav", "100", "0", "1", "1", "3", "3", "dog_bark"]],
    )
    (clip,) = UrbanSound8KSource(str(tmp_path)).clips()
    assert clip.path == str(tmp_path / "audio/fold3/100-3-0-0.wav")
    assert (clip.label, clip.fold, clip.group) == ("dog_bark", "3", "100")


def test_esc50_layout(tmp_path):
    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    _write_csv(tmp_path / "meta/esc50.csv", header, [["1-100-A-0.wav", "1", "0", "dog", "True", "100", "A"]])
    (clip,) = ESC50Source(str(tmp_path)).clips()
    assert clip.path == str(tmp_path / "audio/1-100-A-0.wav")
    assert (clip.label, clip.fold, clip.group) == ("dog", "1", "100")


def test_folder_layout(tmp_path):
    write_tone(tmp_path / "dog" / "a.wav")
    write_tone(tmp_path / "dog" / "sub" / "b.wav")
    write_tone(tmp_path / "siren" / "c.wav")
    (tmp_path / "siren" / "notes.txt").write_text("not audio")
    clips = FolderSource(str(tmp_path)).clips()
    assert sorted((c.label, c.path.split("/")[-1]) for c in clips) == [
        ("dog", "a.wav"),
        ("dog", "b.wav"),
        ("siren", "c.wav"),
    ]


def test_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        FolderSource(str(tmp_path)).clips()


def test_class_map_pools_and_wildcard(tmp_path):
    rows = [
        [f"{label}{i}.wav", label, "1", f"{label}{i}"]
        for label in ("dog_bark", "siren", "drilling")
        for i in range(2)
    ]
    _write_csv(tmp_path / "manifest.csv", ["path", "label", "fold", "group"], rows)
    dm = AudioDataModule(
        source=ManifestSource(str(tmp_path)),
        class_map={"*": "background", "dog_bark": "dog_bark"},
        classes=["dog_bark", "background"],
    )
    assert [c.label for c in dm.labelled_clips()] == ["dog_bark"] * 2 + ["background"] * 4
    assert dm.class_names == ["dog_bark", "background"]


def test_label_not_in_class_list_names_file(tmp_path):
    _write_csv(tmp_path / "manifest.csv", ["path", "label"], [["a.wav", "dog"], ["b.wav", "cat"]])
    dm = AudioDataModule(source=ManifestSource(str(tmp_path)), classes=["dog"])
    with pytest.raises(DataError, match=r"label 'cat' of .*b\.wav is not in data\.classes"):
        dm.labelled_clips()


def test_class_without_training_clips_is_named(tmp_path):
    rows = [[f"d{i}.wav", "dog", "train", ""] for i in range(3)] + [
        ["c0.wav", "cat", "test", ""],
        ["d9.wav", "dog", "val", ""],
    ]
    for r in rows:
        write_tone(tmp_path / r[0])
    _write_csv(tmp_path / "manifest.csv", ["path", "label", "split", "group"], rows)
    dm = AudioDataModule(
        source=ManifestSource(str(tmp_path)),
        classes=["dog", "cat"],
        sample_rate=8000,
        duration=0.5,
        cache_dir=str(tmp_path / "cache"),
    )
    with pytest.raises(DataError, match=r"class\(es\) \['cat'\] have no training clips"):
        dm.setup("fit")


def test_unknown_fold_names_the_folds_found(tmp_path):
    _write_csv(tmp_path / "manifest.csv", ["path", "label", "fold"], [["a.wav", "dog", "fold1"]])
    write_tone(tmp_path / "a.wav")
    dm = AudioDataModule(
        source=ManifestSource(str(tmp_path)),
        train_folds=[1],
        sample_rate=8000,
        cache_dir=str(tmp_path / "cache"),
    )
    with pytest.raises(
        DataError, match=r"train_folds \['1'\] match no clip; the source's folds are \['fold1'\]"
    ):
        dm.setup("fit")


def test_the_same_file_through_a_symlink_is_a_duplicate(tmp_path):
    write_tone(tmp_path / "dog" / "a.wav")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.wav").symlink_to(tmp_path / "dog" / "a.wav")
    dm = AudioDataModule(source=FolderSource(str(tmp_path)))
    with pytest.raises(
        DataError, match=r"1 audio file\(s\) are listed more than once.*a\.wav x2 \(labels \['cat', 'dog'\]"
    ):
        dm.labelled_clips()
