"""Finding images and labels in the four dataset layouts, and the errors for bad DATA paths."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from featx.datasets import SPLITS, Dataset, ImageRecord, collect_image_files, scan_dataset
from featx.errors import FeatxError
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


def test_class_folders_are_searched_recursively_and_loose_root_images_ignored(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("a", "b"), per_class=1)
    write_image(root / "a" / "deeper" / "deepest" / "x.jpg")
    write_image(root / "stray.png")  # next to class folders: ignored, as Keras does
    (root / "empty_folder" / "nested").mkdir(parents=True)  # no images: not a class
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("not an image")
    dataset = scan_dataset(root)
    assert dataset.classes == ("a", "b")
    assert [r.path for r in dataset.records] == ["a/a_0.png", "a/deeper/deepest/x.jpg", "b/b_0.png"]


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


def test_a_class_named_like_a_split_next_to_other_classes_is_a_class(tmp_path):
    root = make_class_folder(tmp_path / "d", classes=("test", "zebra"), per_class=1)
    dataset = scan_dataset(root)
    assert dataset.layout == "classes" and dataset.classes == ("test", "zebra")


# ---------------------------------------------------------------- layout (c): CSV manifest


def _manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_manifest_with_splits_empty_labels_and_missing_files(tmp_path):
    write_image(tmp_path / "data" / "img" / "1.png")
    outside = write_image(tmp_path / "outside" / "o.png")
    inside_abs = write_image(tmp_path / "data" / "img" / "2.png")
    csv = _manifest(tmp_path / "data" / "m.csv", (
        "path,label,split,notes\n"
        "img/1.png,dog,train,first\n"
        f"{outside},cat,Validation,\n"
        f"{inside_abs},,test,x\n"
        "img/missing.png,dog,,gone\n"
        "../outside/o.png,cat,test,relative but outside\n"
        "\n"
    ))
    dataset = scan_dataset(csv)
    assert dataset.layout == "manifest"
    assert dataset.root == csv.parent and dataset.source == csv
    assert dataset.classes == ("cat", "dog")
    assert _summary(dataset) == [
        ("train", "dog", "img/1.png"),
        ("val", "cat", outside.as_posix()),
        ("test", "cat", outside.as_posix()),  # "../outside/o.png": outside root, so absolute
        ("test", "", "img/2.png"),
        ("", "dog", "img/missing.png"),  # kept: the embedder reports it as skipped
    ]


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
