"""Finding images and labels in the four dataset layouts, and the errors for bad DATA paths."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from featx.data.layouts import collect_image_files, scan_dataset
from featx.data.records import SPLITS, Dataset, ImageRecord
from featx.errors import DatasetError, FeatxError
from tests.imagegen import make_class_folder, write_image


def _summary(dataset: Dataset) -> list[tuple[str, str, str]]:
    """(split, class name or "", path) per record, to compare with a literal list."""
    return [(r.split, dataset.classes[r.label] if r.label >= 0 else "", r.path)
            for r in dataset.records]


# ---------------------------------------------------------------- layout (a): class folders


def test_class_folders(tmp_path):
    root = make_class_folder(tmp_path / "pets", classes=("dog", "cat"), per_class=2)
    dataset = scan_dataset(root)
    assert dataset.layout == "classes"
    assert dataset.classes == ("cat", "dog")
    assert dataset.root == root.absolute() and dataset.source == root.absolute()
    assert _summary(dataset) == [
        ("", "cat", "cat/cat_0.png"), ("", "cat", "cat/cat_1.png"),
        ("", "dog", "dog/dog_0.png"), ("", "dog", "dog/dog_1.png"),
    ]
    for record in dataset.records:
        assert (dataset.root / record.path).is_file()


def test_class_folders_are_searched_recursively_and_loose_root_images_left_out_with_a_warning(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("a", "b"), per_class=1)
    write_image(root / "a" / "deeper" / "deepest" / "x.jpg")
    write_image(root / "stray.png")  # next to class folders: left out, as Keras does, but said
    (root / "empty_folder" / "nested").mkdir(parents=True)  # no images: not a class
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("not an image")
    dataset = scan_dataset(root)
    assert dataset.classes == ("a", "b")
    assert [r.path for r in dataset.records] == ["a/a_0.png", "a/deeper/deepest/x.jpg", "b/b_0.png"]
    [warning] = dataset.warnings
    assert "1 image lies" in warning and str(root) in warning and "stray.png" in warning
    assert "left out" in warning and "\n" not in warning


def test_hidden_files_and_folders_are_ignored_and_extensions_any_case(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("a", "b"), per_class=1)
    write_image(root / "a" / ".thumb.png")
    write_image(root / "a" / ".cache" / "x.png")
    write_image(root / ".hidden_class" / "y.png")
    write_image(root / "b" / "UPPER.JPG")
    write_image(root / "b" / "Mixed.PnG")
    (root / "b" / "notes.TXT").write_text("no")
    dataset = scan_dataset(root)
    assert dataset.classes == ("a", "b")
    assert [r.path for r in dataset.records] == ["a/a_0.png", "b/Mixed.PnG", "b/UPPER.JPG",
                                                 "b/b_0.png"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks_are_followed_but_loops_are_not(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write_image(elsewhere / "far.png")
    root = make_class_folder(tmp_path / "d", classes=("a",), per_class=1)
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)
    dataset = scan_dataset(root)
    assert dataset.classes == ("a", "linked")
    assert [r.path for r in dataset.records] == ["a/a_0.png", "linked/far.png"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
@pytest.mark.parametrize("where,target", [
    ("all", "root"),  # a class folder that is the data folder itself
    ("a/up", "root"),  # a link inside a class back to the data folder
    ("above", "parent"),  # a class folder that is a folder above the data folder
])
def test_a_link_back_to_the_data_folder_is_an_error_naming_it(tmp_path, where, target):
    root = make_class_folder(tmp_path / "d", classes=("a", "b"), per_class=1)
    link = root / where
    link.symlink_to(root if target == "root" else tmp_path, target_is_directory=True)
    with pytest.raises(DatasetError) as info:
        scan_dataset(root)
    message = str(info.value)
    assert str(link) in message and "link" in message and "\n" not in message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_one_file_reached_from_two_classes_is_an_error_naming_both(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("cat", "dog"), per_class=1)
    (root / "kitty").symlink_to(root / "cat", target_is_directory=True)
    with pytest.raises(DatasetError, match=r"cat/cat_0.png.*kitty/cat_0.png.*same file"):
        scan_dataset(root)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_link_to_a_file_of_the_same_class_keeps_both_names_with_a_warning(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("cat", "dog"), per_class=1)
    (root / "cat" / "again.png").symlink_to(root / "cat" / "cat_0.png")
    dataset = scan_dataset(root)
    assert [r.path for r in dataset.records] == ["cat/again.png", "cat/cat_0.png", "dog/dog_0.png"]
    [warning] = dataset.warnings
    assert "cat/cat_0.png is the same file as cat/again.png" in warning and "both names" in warning


@pytest.mark.parametrize("collide", [False, True])
def test_only_files_reached_twice_are_doubles_whatever_their_paths_hash_to(tmp_path, monkeypatch, collide):
    """Entries are compared only where real paths share a hash: every row made a suspect (as colliding
    hashes would) changes nothing, and a link is found either way."""
    import featx.data.found as found

    if collide:
        monkeypatch.setattr(found, "_shared_hashes", lambda hashes: set(range(len(hashes))))
    root = make_class_folder(tmp_path / "d", classes=("cat", "dog"), per_class=3, splits=("train", "val"))
    (root / "train" / "cat" / "again.png").symlink_to(root / "train" / "cat" / "cat_0.png")
    dataset = scan_dataset(root)
    assert len(dataset.records) == 13 and len(dataset.warnings) == 1 and "(a link)" in dataset.warnings[0]
    assert [r.split for r in dataset.records] == sorted((r.split for r in dataset.records), key=SPLITS.index)
    for split in ("train", "val"):
        paths = [r.path for r in dataset.records if r.split == split]
        assert paths == sorted(paths)


def test_an_unreadable_class_folder_is_an_error_naming_it(tmp_path, monkeypatch):
    root = make_class_folder(tmp_path / "d", classes=("cat", "dog"), per_class=1)
    locked = root / "dog"
    real_scandir = os.scandir

    def scandir(path="."):  # chmod 000 does not stop root, so refuse the way the OS would
        if os.path.abspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(FeatxError) as info:
        scan_dataset(root)
    message = str(info.value)
    assert str(locked) in message and "Permission denied" in message


def test_a_sound_dataset_has_no_warnings(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("cat", "dog"), per_class=2, splits=("train", "val"))
    assert scan_dataset(root).warnings == ()


def test_scan_is_deterministic_and_records_are_frozen(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("x", "y", "z"), per_class=3)
    first, second = scan_dataset(root), scan_dataset(str(root))
    assert first == second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.records[0].label = 5  # type: ignore[misc]


# ---------------------------------------------------------------- layout (b): split folders


def test_split_folders_with_validation_renamed_and_classes_united(tmp_path):
    root = tmp_path / "d"
    make_class_folder(root, classes=("cat", "dog"), per_class=1, splits=("train", "test"))
    make_class_folder(root, classes=("cat", "owl"), per_class=1, splits=("validation",))
    dataset = scan_dataset(root)
    assert dataset.layout == "splits"
    assert dataset.classes == ("cat", "dog", "owl")
    assert _summary(dataset) == [
        ("train", "cat", "train/cat/cat_0.png"), ("train", "dog", "train/dog/dog_0.png"),
        ("val", "cat", "validation/cat/cat_0.png"), ("val", "owl", "validation/owl/owl_0.png"),
        ("test", "cat", "test/cat/cat_0.png"), ("test", "dog", "test/dog/dog_0.png"),
    ]
    assert {r.split for r in dataset.records} <= set(SPLITS)


def test_val_folder_name_and_split_folder_of_loose_images(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("a", "b"), per_class=1,
                             splits=("train", "val"))
    write_image(root / "test" / "unknown.png")  # no class subfolders: unlabelled test images
    dataset = scan_dataset(root)
    assert dataset.layout == "splits"
    assert _summary(dataset) == [
        ("train", "a", "train/a/a_0.png"), ("train", "b", "train/b/b_0.png"),
        ("val", "a", "val/a/a_0.png"), ("val", "b", "val/b/b_0.png"),
        ("test", "", "test/unknown.png"),
    ]


def test_a_class_named_like_a_split_next_to_other_classes_is_a_class_with_a_warning(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("test", "zebra"), per_class=1)
    dataset = scan_dataset(root)
    assert dataset.layout == "classes" and dataset.classes == ("test", "zebra")
    [warning] = dataset.warnings
    assert "test/" in warning and "read as a class" in warning


@pytest.mark.parametrize("nested", [True, False])
def test_split_folders_mixed_with_other_folders_are_an_error_naming_them(tmp_path, nested):
    root = tmp_path / "d"
    if nested:  # the usual split layout plus one stray folder
        make_class_folder(root, classes=("cat", "dog"), per_class=1, splits=("train", "test"))
        make_class_folder(root / "extra", classes=("cat",), per_class=1)
    else:  # three flat folders: two of them named like splits
        make_class_folder(root, classes=("train", "test", "extra"), per_class=1)
    with pytest.raises(DatasetError) as info:
        scan_dataset(root)
    message = str(info.value)
    assert "train/" in message and "test/" in message and "extra/" in message
    assert "CSV manifest" in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_a_split_folder_holding_class_folders_beside_a_class_is_an_error(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("cat", "dog"), per_class=1, splits=("train",))
    make_class_folder(root, classes=("owl",), per_class=1)
    with pytest.raises(DatasetError, match=r"train/.*owl/"):
        scan_dataset(root)


def test_loose_images_beside_split_folders_and_beside_class_folders_of_a_split_are_warned(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("a", "b"), per_class=1, splits=("train", "val"))
    write_image(root / "top.png")
    write_image(root / "train" / "one.png")
    write_image(root / "train" / "two.jpg")
    dataset = scan_dataset(root)
    assert [r.path for r in dataset.records] == ["train/a/a_0.png", "train/b/b_0.png",
                                                 "val/a/a_0.png", "val/b/b_0.png"]
    assert len(dataset.warnings) == 2
    top, train = sorted(dataset.warnings, key=len)
    assert "1 image lies" in top and "top.png" in top
    assert "2 images lie" in train and str(root / "train") in train and "one.png" in train


# ---------------------------------------------------------------- layout (c): CSV manifest


def _manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_with_splits_empty_labels_and_missing_files(tmp_path):
    write_image(tmp_path / "data" / "img" / "1.png")
    outside = write_image(tmp_path / "outside" / "o.png")
    outside2 = write_image(tmp_path / "outside" / "o2.png")
    inside_abs = write_image(tmp_path / "data" / "img" / "2.png")
    csv = _manifest(tmp_path / "data" / "m.csv", (
        "path,label,split,notes\n"
        "img/1.png,dog,train,first\n"
        f"{outside},cat,Validation,\n"
        f"{inside_abs},,test,x\n"
        "img/missing.png,dog,,gone\n"
        "../outside/o2.png,cat,test,relative but outside\n"
        "\n"
    ))
    dataset = scan_dataset(csv)
    assert dataset.layout == "manifest"
    assert dataset.root == csv.parent and dataset.source == csv
    assert dataset.classes == ("cat", "dog")
    assert _summary(dataset) == [
        ("train", "dog", "img/1.png"),
        ("val", "cat", outside.as_posix()),
        ("test", "cat", outside2.as_posix()),  # "../outside/o2.png": outside root, so absolute
        ("test", "", "img/2.png"),
        ("", "dog", "img/missing.png"),  # kept: the embedder reports it as skipped
    ]


def test_manifest_listing_one_file_with_two_labels_is_an_error_naming_the_rows(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "path,label\na.png,cat\nb.png,dog\n./a.png,dog\n")
    with pytest.raises(DatasetError, match=r"a.png.*'cat' on row 2.*'dog' on row 4"):
        scan_dataset(csv)


def test_manifest_listing_one_file_in_two_splits_is_an_error_naming_the_rows(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "path,label,split\na.png,cat,train\na.png,cat,test\n")
    with pytest.raises(DatasetError, match=r"a.png.*train.*row 2.*test.*row 3"):
        scan_dataset(csv)


def test_manifest_listing_one_file_twice_alike_keeps_it_once_with_a_warning(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "path,label\na.png,cat\nb.png,dog\na.png,cat\n")
    dataset = scan_dataset(csv)
    assert _summary(dataset) == [("", "cat", "a.png"), ("", "dog", "b.png")]
    [warning] = dataset.warnings
    assert "m.csv lists a.png on rows 2 and 4: used once." in warning


def test_manifest_without_split_column_and_with_bom_and_spaces(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_bytes("\ufeffPath , Label\n b.png , 2 \na.png,10\n".encode("utf-8"))
    dataset = scan_dataset(csv)
    assert dataset.classes == ("10", "2")
    assert _summary(dataset) == [("", "10", "a.png"), ("", "2", "b.png")]


def test_manifest_without_label_column_is_unlabelled(tmp_path):
    dataset = scan_dataset(_manifest(tmp_path / "m.csv", "path\nx.png\n"))
    assert dataset.classes == () and dataset.records == (ImageRecord("x.png", -1, ""),)


def test_manifest_unknown_split_names_the_row_and_allowed_values(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "path,label,split\na.png,x,train\nb.png,x,holdout\n")
    expected = r"row 3: unknown split 'holdout'.*train, val, validation, test"
    with pytest.raises(FeatxError, match=expected):
        scan_dataset(csv)


def test_manifest_without_path_column_names_the_columns_found(tmp_path):
    csv = _manifest(tmp_path / "m.csv", "file,label\na.png,x\n")
    with pytest.raises(FeatxError, match=r"no 'path' column \(columns found: file, label\)"):
        scan_dataset(csv)


@pytest.mark.parametrize("text", ["", "path,label\n", "path,label\n\n\n"])
def test_empty_manifest(tmp_path, text):
    with pytest.raises(FeatxError, match="m.csv"):
        scan_dataset(_manifest(tmp_path / "m.csv", text))


def test_manifest_row_with_empty_path(tmp_path):
    with pytest.raises(FeatxError, match="row 2: the path is empty"):
        scan_dataset(_manifest(tmp_path / "m.csv", "path,label\n,cat\n"))


# ---------------------------------------------------------------- layout (d) and errors


def test_folder_of_images_is_unlabelled(tmp_path):
    for name in ("b.png", "a.JPG", ".hidden.png"):
        write_image(tmp_path / "imgs" / name)
    (tmp_path / "imgs" / "empty").mkdir()
    dataset = scan_dataset(tmp_path / "imgs")
    assert dataset.layout == "unlabelled" and dataset.classes == ()
    assert dataset.records == (ImageRecord("a.JPG", -1, ""), ImageRecord("b.png", -1, ""))


@pytest.mark.parametrize("make", ["missing", "empty", "no_images", "text_file"])
def test_bad_data_paths_say_what_is_expected(tmp_path, make):
    path = tmp_path / "data"
    if make == "empty":
        path.mkdir()
    elif make == "no_images":
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "a.txt").write_text("x")
        (path / ".hidden.png").write_bytes(b"x")
    elif make == "text_file":
        path.write_text("x")
    with pytest.raises(FeatxError) as info:
        scan_dataset(path)
    message = str(info.value)
    assert str(path) in message and "class subfolders" in message and "CSV" in message
    assert "\n" not in message


# ---------------------------------------------------------------- collect_image_files


def test_collect_image_files_from_files_and_folders(tmp_path):
    single = write_image(tmp_path / "one.webp")
    folder = make_class_folder(tmp_path / "many", classes=("a",), per_class=2, ext=".JPG")
    write_image(folder / ".hidden.png")
    (folder / "a" / "notes.txt").write_text("x")
    found = collect_image_files([folder, single, str(single)])
    assert found == sorted([folder / "a" / "a_0.JPG", folder / "a" / "a_1.JPG", single],
                           key=os.fspath)


def test_collect_image_files_errors(tmp_path):
    with pytest.raises(FeatxError, match="does not exist"):
        collect_image_files([tmp_path / "nope.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatxError, match="no image files"):
        collect_image_files([tmp_path / "empty"])


# ---------------------------------------------------------------- warnings reach the user


@pytest.mark.integration  # embeds with a Keras backbone
def test_scan_warnings_reach_the_cli_json_and_python(tmp_path, cache_dir):
    import json

    from typer.testing import CliRunner

    import featx
    from featx.cli import app

    data = make_class_folder(tmp_path / "data", classes=("a", "b"), per_class=1)
    write_image(data / "stray.png")
    args = ["embed", str(data), "-b", "MobileNetV2", "--weights", "none", "--image-size", "32"]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    [warning] = json.loads(first.stdout)["warnings"]
    assert "stray.png" in warning and "left out" in warning
    again = CliRunner().invoke(app, args)  # nothing left to embed: the warning is still said
    assert again.exit_code == 0 and f"warning: {warning}" in again.stderr.splitlines()
    assert "warning:" not in again.stdout
    assert featx.embed(data, "MobileNetV2", weights="none", image_size=32).report.warnings == (warning,)


def test_records_are_columns_in_path_order_where_the_walk_is_not(tmp_path, monkeypatch):
    """A folder walk lists class "a" before "a-b", but "a-b/x.png" sorts before "a/y.png" ('-' < '/'),
    and a class folder's files before its subfolder's: the records are sorted by path all the same,
    each keeping its label, and held as columns (a block of finds at a time)."""
    import featx.data.found as found
    from featx.data.records import RecordColumns

    monkeypatch.setattr(found, "_BLOCK", 2)  # several blocks
    for name in ("a/y.png", "a/sub/z.png", "a/zz.png", "a-b/x.png", "ab/w.png"):
        write_image(tmp_path / "d" / name)
    dataset = scan_dataset(tmp_path / "d")
    assert isinstance(dataset.records, RecordColumns)
    assert [(r.path, r.label) for r in dataset.records] == [
        ("a-b/x.png", 1), ("a/sub/z.png", 0), ("a/y.png", 0), ("a/zz.png", 0), ("ab/w.png", 2)]
    assert dataset.records == tuple(dataset.records) and dataset.records[1:3] == list(dataset.records)[1:3]
