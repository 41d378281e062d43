"""Real-dataset builders (ucf101, hmdb51, folder) on small generated layouts.

The fixtures write split files in the official formats and empty placeholder videos:
the builders only list files, they never decode them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import datamodules.layouts  # noqa: F401  (registers ucf101, hmdb51, folder)
from datamodules.datasets import create_dataset, list_datasets
from datamodules.errors import DatasetLayoutError, SplitError
from datamodules.layouts import DatasetLayoutWarning, resolve_video

# classInd order on purpose differs from sorted order: labels must follow classInd
UCF_CLASSES = ("Zebra", "Apple", "Mango")
UCF_GROUPS = 4  # videos per class: v_<Class>_g0<g>_c01, split k tests on group k


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _ucf_name(cls: str, group: int) -> str:
    return f"{cls}/v_{cls}_g{group:02d}_c01.avi"


def _write_ucf(root: Path, splits: str = "splits", suffix: str = ".m4v") -> Path:
    sdir = root / splits
    sdir.mkdir(parents=True)
    # CRLF and a trailing blank line, as in the official files
    (sdir / "classInd.txt").write_text(
        "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)) + "\r\n"
    )
    for split in (1, 2, 3):
        train, test = [], []
        for i, cls in enumerate(UCF_CLASSES, 1):
            for g in range(1, UCF_GROUPS + 1):
                if g == split:
                    test.append(f"{_ucf_name(cls, g)}\r\n")
                else:
                    train.append(f"{_ucf_name(cls, g)} {i}\r\n")
        (sdir / f"trainlist{split:02d}.txt").write_text("".join(train))
        (sdir / f"testlist{split:02d}.txt").write_text("".join(test))
    for cls in UCF_CLASSES:
        for g in range(1, UCF_GROUPS + 1):
            _touch((root / "videos" / _ucf_name(cls, g)).with_suffix(suffix))
    return root


@pytest.fixture
def ucf_root(tmp_path: Path) -> Path:
    return _write_ucf(tmp_path / "ucf101")


def _problem(excinfo: pytest.ExceptionInfo[DatasetLayoutError]) -> str:
    return str(excinfo.value)


def test_registered() -> None:
    assert {"ucf101", "hmdb51", "folder"} <= set(list_datasets())


# --- resolver --------------------------------------------------------------------------


def test_resolve_prefers_prepared_suffix(tmp_path: Path) -> None:
    name = "A/v_a.avi"
    assert resolve_video(tmp_path, name) is None
    original = _touch(tmp_path / "A/v_a.avi")
    assert resolve_video(tmp_path, name) == original  # as written, when nothing prepared
    mp4 = _touch(tmp_path / "A/v_a.mp4")
    assert resolve_video(tmp_path, name) == mp4
    m4v = _touch(tmp_path / "A/v_a.m4v")
    assert resolve_video(tmp_path, name) == m4v
    assert resolve_video(tmp_path, name, (".mp4", ".m4v")) == mp4  # caller's order
    assert resolve_video(tmp_path, name, ("mp4",)) == mp4  # dot optional
    assert resolve_video(tmp_path, name, ()) == original
    assert resolve_video(tmp_path, "A/v_b.avi") is None


# --- UCF101 ----------------------------------------------------------------------------


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_splits_labels_and_counts(ucf_root: Path, split: int) -> None:
    train = create_dataset("ucf101", ucf_root, split, "train")
    test = create_dataset("ucf101", ucf_root, split, "test")
    for videos in (train, test):
        assert videos.classes == UCF_CLASSES  # classInd order, not sorted order
        assert videos.split == split and videos.dataset == "ucf101"
        for item in videos.items:
            assert videos.classes[item.label] == item.name.split("/")[0]
            assert item.path == (ucf_root / "videos" / item.name).with_suffix(".m4v")
    assert len(train) == len(UCF_CLASSES) * (UCF_GROUPS - 1)
    assert len(test) == len(UCF_CLASSES)
    # split-file order, names as the split file writes them
    assert [item.name for item in test.items] == [_ucf_name(c, split) for c in UCF_CLASSES]
    assert {i.name for i in train.items}.isdisjoint(i.name for i in test.items)
    assert [i.label for i in test.items] == [0, 1, 2]


def test_ucf101_official_dir_name_and_overrides(tmp_path: Path) -> None:
    root = _write_ucf(tmp_path / "a", splits="ucfTrainTestlist")
    assert len(create_dataset("ucf101", root, 1, "test")) == 3
    (root / "videos").rename(root / "prepared")
    custom = create_dataset(
        "ucf101", root, 1, "test", splits_dir="ucfTrainTestlist", videos_dir=root / "prepared"
    )
    assert all(i.path.parent.parent == root / "prepared" for i in custom.items)


def test_ucf101_unprepared_avi_found_as_written(tmp_path: Path) -> None:
    root = _write_ucf(tmp_path / "a", suffix=".avi")
    assert all(i.path.suffix == ".avi" for i in create_dataset("ucf101", root, 2, "train").items)


def test_ucf101_missing_root_and_dirs(tmp_path: Path, ucf_root: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="needs its root"):
        create_dataset("ucf101", None)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        create_dataset("ucf101", tmp_path / "nowhere")
    with pytest.raises(DatasetLayoutError, match="videos directory does not exist"):
        create_dataset("ucf101", ucf_root, videos_dir="elsewhere")
    (ucf_root / "videos").rename(ucf_root / "raw")
    with pytest.raises(DatasetLayoutError, match="cvbench prepare"):
        create_dataset("ucf101", ucf_root)
    (ucf_root / "splits").rename(ucf_root / "lists")
    with pytest.raises(DatasetLayoutError, match="ucfTrainTestlist/") as err:
        create_dataset("ucf101", ucf_root)
    assert "splits/" in _problem(err)


@pytest.mark.parametrize("missing_file", ["classInd.txt", "trainlist02.txt"])
def test_ucf101_missing_split_files(ucf_root: Path, missing_file: str) -> None:
    (ucf_root / "splits" / missing_file).unlink()
    with pytest.raises(DatasetLayoutError, match="file not found") as err:
        create_dataset("ucf101", ucf_root, 2, "train")
    assert err.value.path == str(ucf_root / "splits" / missing_file)


@pytest.mark.parametrize("split", [0, 4, True, "1"])
def test_bad_split_number(ucf_root: Path, split: object) -> None:
    for name in ("ucf101", "hmdb51", "folder"):
        with pytest.raises(SplitError, match=f"split {split!r}: {name} has 3 splits, 1-3"):
            create_dataset(name, ucf_root, split)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("Apple/v_Apple_g01_c01.avi 1", "line 2: label 1 disagrees with the class folder 'Apple'"),
        ("Kiwi/v_Kiwi_g01_c01.avi 2", "line 2: class folder 'Kiwi' is not in classInd.txt"),
        ("v_Apple_g01_c01.avi 2", "line 2: expected 'ClassName/v_name.avi"),
        ("Apple/v_Apple_g01_c01.avi 2 x", "line 2: expected"),
        ("Apple/v_Apple_g01_c01.avi two", "line 2: label 'two' is not a class index"),
        ("Apple/../../etc/passwd 2", "line 2: .* must be a relative path"),
        ("Zebra/v_Zebra_g02_c01.avi 1", "line 2: 'Zebra/v_Zebra_g02_c01.avi' is listed again"),
    ],
)
def test_ucf101_bad_trainlist_line(ucf_root: Path, line: str, problem: str) -> None:
    path = ucf_root / "splits" / "trainlist01.txt"
    first = path.read_text().splitlines()[0]
    path.write_text(f"{first}\n{line}\n")
    with pytest.raises(DatasetLayoutError, match=problem) as err:
        create_dataset("ucf101", ucf_root, 1, "train")
    assert err.value.path == str(path)


def test_ucf101_testlist_unknown_class_and_optional_label(ucf_root: Path) -> None:
    path = ucf_root / "splits" / "testlist01.txt"
    path.write_text("Apple/v_Apple_g01_c01.avi 2\nMango/v_Mango_g01_c01.avi\n")
    with pytest.warns(DatasetLayoutWarning, match="1 of 3 classes have no video .*: Zebra"):
        assert [i.label for i in create_dataset("ucf101", ucf_root, 1, "test").items] == [1, 2]
    path.write_text("Apple/v_Apple_g01_c01.avi\napple/v_apple_g01_c01.avi\n")
    with pytest.raises(DatasetLayoutError, match="line 2: class folder 'apple'"):
        create_dataset("ucf101", ucf_root, 1, "test")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1 A\n1 B\n", "line 2: index 1 is given twice"),
        ("1 A\n2 A\n", "line 2: 'A' is listed again"),
        ("1 A\n3 B\n", "without gaps; missing 2"),
        ("0 A\n1 B\n", "must start at 1"),
        ("A 1\n", "line 1: expected '<index> <ClassName>'"),
        ("\n", "no classes listed"),
    ],
)
def test_ucf101_bad_class_ind(ucf_root: Path, text: str, problem: str) -> None:
    (ucf_root / "splits" / "classInd.txt").write_text(text)
    with pytest.raises(DatasetLayoutError, match=problem):
        create_dataset("ucf101", ucf_root, 1, "test")


def test_missing_videos_error_lists_count_and_names(ucf_root: Path) -> None:
    for cls in ("Apple", "Mango"):
        (ucf_root / "videos" / _ucf_name(cls, 2)).with_suffix(".m4v").unlink()
    with pytest.raises(DatasetLayoutError) as err:
        create_dataset("ucf101", ucf_root, 1, "train")
    message = _problem(err)
    assert "2 of 9 videos listed in" in message and "trainlist01.txt" in message
    assert _ucf_name("Apple", 2) in message and _ucf_name("Mango", 2) in message
    assert "cvbench prepare" in message and "missing='skip'" in message
    assert err.value.path == str(ucf_root / "videos")


def test_missing_videos_skip_warns_with_count(ucf_root: Path) -> None:
    (ucf_root / "videos" / _ucf_name("Apple", 2)).with_suffix(".m4v").unlink()
    with pytest.warns(DatasetLayoutWarning, match="skipped 1 of 9 videos"):
        videos = create_dataset("ucf101", ucf_root, 1, "train", missing="skip")
    assert len(videos) == 8 and _ucf_name("Apple", 2) not in {i.name for i in videos.items}
    # the other subset does not need the missing video
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(create_dataset("ucf101", ucf_root, 1, "test", missing="skip")) == 3


def test_skip_everything_missing_is_still_an_error(ucf_root: Path) -> None:
    for path in (ucf_root / "videos").rglob("*.m4v"):
        path.unlink()
    with pytest.raises(DatasetLayoutError, match="12 of 12|3 of 3"):
        create_dataset("ucf101", ucf_root, 1, "test", missing="skip")


def test_bad_options(ucf_root: Path) -> None:
    with pytest.raises(ValueError, match="missing must be one of"):
        create_dataset("ucf101", ucf_root, missing="ignore")
    with pytest.raises(TypeError):
        create_dataset("ucf101", ucf_root, video_dir="videos")  # typo is not ignored
    with pytest.raises(ValueError, match="subset"):
        datamodules.layouts.ucf101(ucf_root, 1, "val")


# --- HMDB51 ----------------------------------------------------------------------------

# "Banana" sorts before "apple" case-sensitively (and after it case-insensitively)
HMDB_CLASSES = ("apple", "Banana", "cherry_pick")
HMDB_VIDEOS = 6  # per class; split k: video k-1 test, video k+2 unused, the rest train


def _hmdb_tag(split: int, video: int) -> int:
    return 2 if video == split - 1 else 0 if video == split + 2 else 1


def _write_hmdb(root: Path, classes=HMDB_CLASSES, videos: int = HMDB_VIDEOS, tag=_hmdb_tag) -> Path:
    for cls in classes:
        for split in (1, 2, 3):
            lines = "".join(f"{cls}_{v}.avi {tag(split, v)} \n" for v in range(videos))
            _touch(root / "splits" / f"{cls}_test_split{split}.txt").write_text(lines)
        for v in range(videos):
            _touch(root / "videos" / cls / f"{cls}_{v}.m4v")
    return root


@pytest.fixture
def hmdb_root(tmp_path: Path) -> Path:
    return _write_hmdb(tmp_path / "hmdb51")


small_hmdb = pytest.mark.filterwarnings(
    "ignore:.*do not have 70 train:datamodules.layouts.DatasetLayoutWarning"
)


@small_hmdb
@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_tags_labels_counts(hmdb_root: Path, split: int) -> None:
    train = create_dataset("hmdb51", hmdb_root, split, "train")
    test = create_dataset("hmdb51", hmdb_root, split, "test")
    assert train.classes == ("Banana", "apple", "cherry_pick")
    assert len(train) == 3 * (HMDB_VIDEOS - 2) and len(test) == 3
    for videos in (train, test):
        for item in videos.items:
            cls, video = item.name.split("/")
            assert videos.classes[item.label] == cls
            assert item.path == hmdb_root / "videos" / cls / video.replace(".avi", ".m4v")
    assert [i.name for i in test.items] == [f"{c}/{c}_{split - 1}.avi" for c in train.classes]
    unused = {f"{c}/{c}_{split + 2}.avi" for c in HMDB_CLASSES}
    names = {i.name for i in train.items} | {i.name for i in test.items}
    assert unused.isdisjoint(names) and len(names) == 3 * (HMDB_VIDEOS - 1)


def test_hmdb51_warns_unless_70_30(tmp_path: Path, hmdb_root: Path) -> None:
    with pytest.warns(DatasetLayoutWarning, match="3 of 3 classes do not have 70 train / 30 test"):
        create_dataset("hmdb51", hmdb_root, 1, "test")

    def full(split: int, video: int) -> int:  # 70 train, 30 test, 1 unused
        return 1 if video < 70 else 2 if video < 100 else 0

    root = _write_hmdb(tmp_path / "full", classes=("a", "b"), videos=101, tag=full)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(create_dataset("hmdb51", root, 3, "train")) == 140
        assert len(create_dataset("hmdb51", root, 3, "test")) == 60


@small_hmdb
def test_hmdb51_official_dir_name(tmp_path: Path) -> None:
    root = _write_hmdb(tmp_path / "h")
    (root / "splits").rename(root / "testTrainMulti_7030_splits")
    _touch(root / "testTrainMulti_7030_splits" / "._apple_test_split1.txt")  # macOS debris
    assert len(create_dataset("hmdb51", root, 1, "test").classes) == 3


@small_hmdb
def test_hmdb51_missing_split_file_lists_classes(hmdb_root: Path) -> None:
    (hmdb_root / "splits" / "apple_test_split2.txt").unlink()
    (hmdb_root / "splits" / "cherry_pick_test_split2.txt").unlink()
    assert len(create_dataset("hmdb51", hmdb_root, 1, "test")) == 3  # split 1 is complete
    with pytest.raises(DatasetLayoutError, match="2 of 3 classes have no split-2 file") as err:
        create_dataset("hmdb51", hmdb_root, 2, "test")
    assert "apple_test_split2.txt, cherry_pick_test_split2.txt" in _problem(err)


@small_hmdb
@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("apple_9.avi 3", "line 2: expected '<video>.avi 0|1|2'"),
        ("apple_9.avi", "line 2: expected"),
        ("apple_0.avi 1", "line 2: 'apple_0.avi' is listed again"),
    ],
)
def test_hmdb51_bad_line(hmdb_root: Path, line: str, problem: str) -> None:
    path = hmdb_root / "splits" / "apple_test_split1.txt"
    path.write_text(f"apple_0.avi 1\n{line}\n")
    with pytest.raises(DatasetLayoutError, match=problem) as err:
        create_dataset("hmdb51", hmdb_root, 1, "train")
    assert err.value.path == str(path)


@small_hmdb
def test_hmdb51_missing_videos_and_dirs(tmp_path: Path, hmdb_root: Path) -> None:
    (hmdb_root / "videos" / "Banana" / "Banana_0.m4v").unlink()
    with pytest.raises(DatasetLayoutError, match="1 of 3 videos .* first: Banana/Banana_0.avi"):
        create_dataset("hmdb51", hmdb_root, 1, "test")
    assert len(create_dataset("hmdb51", hmdb_root, 2, "test")) == 3
    with pytest.raises(DatasetLayoutError, match="needs its root"):
        create_dataset("hmdb51", None)
    empty = tmp_path / "empty"
    (empty / "splits").mkdir(parents=True)
    (empty / "videos").mkdir()
    with pytest.raises(DatasetLayoutError, match="no <class>_test_split"):
        create_dataset("hmdb51", empty)
    with pytest.raises(DatasetLayoutError, match="testTrainMulti_7030_splits/"):
        create_dataset("hmdb51", tmp_path)


# --- folder ----------------------------------------------------------------------------

FOLDER_SIZES = {"b": 4, "A": 8, "c": 10}  # sorted classes: A, b, c


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for cls, n in FOLDER_SIZES.items():
        for v in range(n):
            _touch(root / cls / f"{cls}{v:02d}.m4v")
    return root


def _names(videos) -> list[str]:
    return [item.name for item in videos.items]


def test_folder_classes_and_coverage(folder_root: Path) -> None:
    everything = {f"{c}/{c}{v:02d}.m4v" for c, n in FOLDER_SIZES.items() for v in range(n)}
    tests = []
    for split in (1, 2, 3):
        train = create_dataset("folder", folder_root, split, "train")
        test = create_dataset("folder", folder_root, split, "test")
        assert train.classes == ("A", "b", "c")
        assert set(_names(train)).isdisjoint(_names(test))
        assert set(_names(train)) | set(_names(test)) == everything
        assert _names(train) == sorted(_names(train), key=lambda n: (n.split("/")[0], n))
        per_class = {c: sum(i.name.startswith(f"{c}/") for i in test.items) for c in test.classes}
        assert per_class == {"A": 2, "b": 1, "c": 3}  # round(0.25 n), half up
        for item in test.items:
            assert test.classes[item.label] == item.name.split("/")[0]
            assert item.path == folder_root / item.name
        tests.append(set(_names(test)))
    # test_fraction <= 1/3: the three test sets are disjoint, as UCF101's are
    assert not (tests[0] & tests[1] or tests[1] & tests[2] or tests[0] & tests[2])


def test_folder_partition_is_deterministic_and_seeded(folder_root: Path) -> None:
    first = _names(create_dataset("folder", folder_root, 2, "test"))
    assert _names(create_dataset("folder", folder_root, 2, "test")) == first
    other = {
        tuple(_names(create_dataset("folder", folder_root, 2, "test", seed=seed)))
        for seed in range(1, 4)
    }
    assert other - {tuple(first)}
    half = create_dataset("folder", folder_root, 1, "test", test_fraction=0.5)
    assert len(half) == 2 + 4 + 5


def test_folder_extensions_and_duplicates(folder_root: Path) -> None:
    _touch(folder_root / "A" / "A00.avi")  # original beside its prepared copy: one video
    _touch(folder_root / "A" / "notes.txt")
    _touch(folder_root / "A" / ".hidden.m4v")
    _touch(folder_root / "A" / "g2" / "A99.MP4")  # nested and upper-case suffix
    _touch(folder_root / ".cache" / "x.m4v")
    names = {
        n
        for s in ("train", "test")
        for n in _names(create_dataset("folder", folder_root, 1, s))
        if n.startswith("A/")
    }
    assert "A/A00.m4v" in names and "A/A00.avi" not in names and "A/g2/A99.MP4" in names
    assert len(names) == FOLDER_SIZES["A"] + 1
    avi_first = {
        n
        for s in ("train", "test")
        for n in _names(create_dataset("folder", folder_root, 1, s, extensions=(".avi", ".m4v")))
    }
    assert "A/A00.avi" in avi_first and "A/g2/A99.MP4" not in avi_first


def test_folder_layout_errors(tmp_path: Path, folder_root: Path) -> None:
    (folder_root / "empty").mkdir()
    (folder_root / "d").mkdir()
    _touch(folder_root / "d" / "readme.txt")
    with pytest.raises(DatasetLayoutError, match="2 class folders hold no video") as err:
        create_dataset("folder", folder_root)
    assert "d, empty" in _problem(err)
    _touch(folder_root / "empty" / "one.m4v")
    (folder_root / "d" / "readme.txt").unlink()
    (folder_root / "d").rmdir()
    with pytest.raises(DatasetLayoutError, match="classes with one video .*: empty"):
        create_dataset("folder", folder_root)
    (tmp_path / "flat").mkdir()
    _touch(tmp_path / "flat" / "x.m4v")
    with pytest.raises(DatasetLayoutError, match="no class subfolders"):
        create_dataset("folder", tmp_path / "flat")
    with pytest.raises(DatasetLayoutError, match="needs its root"):
        create_dataset("folder", None)
    for fraction in (0.0, 1.0):
        with pytest.raises(ValueError, match="test_fraction"):
            create_dataset("folder", tmp_path / "tree", test_fraction=fraction)


def _write_lists(root: Path, split: int, train: list[str], test: list[str]) -> None:
    (root / f"train{split}.txt").write_text("\n".join(train) + "\n")
    (root / f"test{split}.txt").write_text("\n".join(test) + "\n")


def test_folder_explicit_lists(folder_root: Path) -> None:
    for split in (1, 2):
        _write_lists(
            folder_root,
            split,
            ["c/c03.avi", "A/A00.m4v", f"b/b0{split}.m4v"],  # .avi resolves to the .m4v
            ["b/b03.m4v", "A/A01.m4v"],
        )
    lists = {"train_list": "train{split}.txt", "test_list": "test{split}.txt"}
    train = create_dataset("folder", folder_root, 2, "train", **lists)
    assert _names(train) == ["c/c03.avi", "A/A00.m4v", "b/b02.m4v"]  # list order
    assert [i.label for i in train.items] == [2, 0, 1]
    assert train.items[0].path == folder_root / "c" / "c03.m4v"
    with pytest.warns(DatasetLayoutWarning, match="1 of 3 classes have no video .*: c"):
        test = create_dataset("folder", folder_root, 1, "test", **lists)
    assert _names(test) == [
        "b/b03.m4v",
        "A/A01.m4v",
    ]
    fixed = {"train_list": "train1.txt", "test_list": "test1.txt"}
    assert len(create_dataset("folder", folder_root, 1, "train", **fixed)) == 3
    with pytest.raises(DatasetLayoutError, match="no '{split}' placeholder"):
        create_dataset("folder", folder_root, 2, "train", **fixed)
    with pytest.raises(ValueError, match="both train_list and test_list"):
        create_dataset("folder", folder_root, train_list="train1.txt")
    with pytest.raises(ValueError, match="exclude each other"):
        create_dataset("folder", folder_root, test_fraction=0.2, **fixed)
    with pytest.raises(DatasetLayoutError, match="file not found"):
        create_dataset("folder", folder_root, 3, **lists)


@pytest.mark.parametrize(
    ("train", "test", "problem"),
    [
        (["A/A00.m4v"], ["A/A01.m4v", "A/A00.avi"], "1 videos are also in"),
        (["A/A00.m4v", "z/z.m4v"], ["A/A01.m4v"], "line 2: 'z/z.m4v' is not under a class folder"),
        (["A00.m4v"], ["A/A01.m4v"], "line 1: 'A00.m4v' is not under a class folder"),
        (["A/A00.m4v", "A/A00.m4v"], ["A/A01.m4v"], "line 2: 'A/A00.m4v' is listed again"),
        (["A/A00.m4v", "A/A77.m4v"], ["A/A01.m4v"], "1 of 2 videos listed in .* first: A/A77"),
    ],
)
def test_folder_bad_lists(
    folder_root: Path, train: list[str], test: list[str], problem: str
) -> None:
    _write_lists(folder_root, 1, train, test)
    with pytest.raises(DatasetLayoutError, match=problem):
        create_dataset(
            "folder", folder_root, 1, "train", train_list="train1.txt", test_list="test1.txt"
        )
