"""The synthetic dataset: determinism, layout, resume, splits, and its purpose -- the class
is in the motion (motion vectors), not in the appearance (I-frames)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

import datamodules.synthetic as synthetic
from datamodules.datasets import create_dataset
from datamodules.synthetic import (
    MOTION_CLASSES,
    SyntheticConfig,
    build_synthetic,
    default_root,
    generate,
    make_translation_video,
    object_track,
    split_indices,
)

TINY = SyntheticConfig(num_classes=2, videos_per_class=3, size=(48, 64), frames=14)
# Enough videos for the classifiers, small enough for a few seconds on 2 cores.
CLASSIFY = SyntheticConfig(videos_per_class=12, frames=24)


def _files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != synthetic.MANIFEST
    }


def _options(config: SyntheticConfig) -> dict:
    return {f: getattr(config, f) for f in ("num_classes", "videos_per_class", "size", "frames")}


def test_same_config_same_bytes(tmp_path: Path) -> None:
    a = generate(TINY, tmp_path / "a", workers=1, progress=False)
    b = generate(TINY, tmp_path / "b", workers=2, progress=False)
    assert a.name == b.name == TINY.digest()
    assert _files(a) == _files(b) and len(_files(a)) == 6
    # another seed, other videos
    c = generate(replace(TINY, seed=1), tmp_path / "c", workers=1, progress=False)
    assert c.name != a.name
    assert set(_files(c).values()).isdisjoint(_files(a).values())


def test_layout_and_manifest(tmp_path: Path) -> None:
    directory = generate(TINY, tmp_path, workers=1, progress=False)
    assert directory == tmp_path / TINY.digest()
    names = sorted(_files(directory))
    assert names == [
        f"{c}/{c}_{i:03d}.m4v" for c in ("translate_left", "translate_right") for i in range(3)
    ]
    manifest = json.loads((directory / synthetic.MANIFEST).read_text())
    assert manifest["classes"] == ["translate_right", "translate_left"]
    assert SyntheticConfig(**manifest["config"]) == TINY
    assert sorted(v["name"] for v in manifest["videos"]) == names
    assert not list(directory.rglob("*.part"))
    with av.open(str(directory / names[0])) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
        types = [f.pict_type for f in video.decode(stream)]
    assert len(types) == 14 and [i for i, t in enumerate(types) if t == 1] == [0, 12]


def test_default_root_follows_cvbench_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CVBENCH_CACHE", str(tmp_path))
    assert default_root() == tmp_path / "synthetic"
    monkeypatch.delenv("CVBENCH_CACHE")
    assert default_root() == Path("~/.cache/cvbench/synthetic").expanduser()


def test_interrupted_generation_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    original = synthetic._make_video

    def interrupted(job) -> None:
        if len(made) == 2:
            raise KeyboardInterrupt
        made.append(job)
        original(job)

    monkeypatch.setattr(synthetic, "_make_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(TINY, tmp_path, workers=1, progress=False)
    directory = tmp_path / TINY.digest()
    assert not (directory / synthetic.MANIFEST).exists()  # not finished
    kept = {p: p.stat().st_mtime_ns for p in directory.rglob("*.m4v")}
    assert len(kept) == 2

    monkeypatch.setattr(synthetic, "_make_video", original)
    generate(TINY, tmp_path, workers=1, progress=False)
    assert (directory / synthetic.MANIFEST).exists() and len(_files(directory)) == 6
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished files kept as they were

    # A finished dataset is not touched again; a lost file is made again, identical.
    lost = directory / TINY.video_name(1, 2)
    content = lost.read_bytes()
    lost.unlink()
    generate(TINY, tmp_path, workers=1, progress=False)
    assert lost.read_bytes() == content


def test_splits_partition_the_videos(tmp_path: Path) -> None:
    config = replace(TINY, num_classes=3, videos_per_class=8)
    everything = {(c, i) for c in range(3) for i in range(8)}
    partitions = []
    for split in (1, 2, 3):
        subsets = split_indices(config, split)
        train, test = set(subsets["train"]), set(subsets["test"])
        assert not train & test and train | test == everything
        assert all(sum(1 for c, _ in test if c == label) == 2 for label in range(3))  # 25 %
        partitions.append(test)
    assert len({frozenset(p) for p in partitions}) == 3
    with pytest.raises(ValueError, match="split"):
        split_indices(config, 4)

    options = {"num_classes": 3, "videos_per_class": 8, "size": [48, 64], "frames": 14}
    train = create_dataset("synthetic", tmp_path, 2, "train", progress=False, **options)
    test = build_synthetic(tmp_path, 2, "test", progress=False, **options)
    assert train.classes == test.classes == ("translate_right", "translate_left", "translate_up")
    assert (len(train), len(test)) == (18, 6)
    for item in train.items + test.items:
        assert item.path.is_file() and item.path.parent.name == train.classes[item.label]
        assert item.path.relative_to(tmp_path / config.digest()).as_posix() == item.name
    assert {(i.label, int(i.path.stem[-3:])) for i in test.items} == set(
        split_indices(config, 2)["test"]
    )
    with pytest.raises(TypeError, match="colour"):
        build_synthetic(tmp_path, 1, "train", colour="red")


def test_translation_video_ground_truth(tmp_path: Path) -> None:
    truth = make_translation_video(tmp_path / "t.m4v", frames=14, velocity=(1.5, -2.0))
    assert truth.size == (128, 160) and truth.boxes.shape == (14, 4)
    np.testing.assert_allclose(np.diff(truth.boxes, axis=0), [[-2.0, 1.5, -2.0, 1.5]] * 13)
    found = []
    with av.open(str(truth.path)) as video:
        stream = video.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for f, frame in enumerate(video.decode(stream)):
            if f in (0, 12):
                continue
            mv = frame.side_data.get("MOTION_VECTORS").to_ndarray()
            x0, y0, x1, y1 = truth.boxes[f]
            inside = (mv["dst_x"] - 8 >= x0) & (mv["dst_x"] + 8 <= x1)
            inside &= (mv["dst_y"] - 8 >= y0) & (mv["dst_y"] + 8 <= y1)
            scale = mv["motion_scale"][inside]
            # the stored vector points from the block to its source: content motion is minus it
            found.append(
                (
                    -np.median(mv["motion_y"][inside] / scale),
                    -np.median(mv["motion_x"][inside] / scale),
                )
            )
    assert np.abs(np.median(found, axis=0) - (1.5, -2.0)).max() <= 0.25
    with pytest.raises(ValueError, match="leaves"):
        make_translation_video(tmp_path / "u.m4v", frames=40, velocity=(0.0, 5.0))


# ------------------------------------------------------------------- the dataset's purpose


def _logistic_regression(train_x, train_y, test_x, num_classes: int) -> np.ndarray:
    """Multinomial logistic regression (standardised inputs, L2, full-batch gradient
    descent; numpy, so deterministic): test log-probabilities."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = np.c_[(train_x - mean) / std, np.ones(len(train_x))]
    target = np.eye(num_classes)[train_y]
    weights = np.zeros((x.shape[1], num_classes))
    for _ in range(300):
        logits = x @ weights
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        weights -= 0.5 * (x.T @ (p - target) / len(x) + 1e-3 * weights)
    logits = np.c_[(test_x - mean) / std, np.ones(len(test_x))] @ weights
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def _iframe_features(path: Path) -> np.ndarray:
    """Per I-frame: 8 x 10 block means of the pixels and 8-bin colour histograms."""
    features = []
    with av.open(str(path)) as video:
        stream = video.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        for frame in video.decode(stream):
            image = frame.to_ndarray(format="rgb24").astype(np.float32) / 255
            h, w = image.shape[0] // 8, image.shape[1] // 10
            blocks = image[: 8 * h, : 10 * w].reshape(8, h, 10, w, 3).mean(axis=(1, 3))
            hist = [
                np.histogram(image[..., c], bins=8, range=(0, 1))[0] / image[..., c].size
                for c in range(3)
            ]
            features.append(np.concatenate([blocks.ravel(), *hist]))
    return np.stack(features)  # (I-frames, 264)


def _motion_features(path: Path) -> np.ndarray:
    """Per video, from the P-frames' motion vectors relative to the background (median)
    motion: mean and mean absolute motion, radial (zoom) and tangential (rotation) motion
    about the moving blocks' centre, moving area; their spread and sign flips over time."""
    rows = []
    with av.open(str(path)) as video:
        stream = video.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        width, height = stream.codec_context.width, stream.codec_context.height
        for frame in video.decode(stream):
            side = frame.side_data.get("MOTION_VECTORS")
            if side is None:
                continue
            mv = side.to_ndarray()
            vx = -mv["motion_x"] / mv["motion_scale"]  # content motion, px/frame
            vy = -mv["motion_y"] / mv["motion_scale"]
            rx, ry = vx - np.median(vx), vy - np.median(vy)
            moving = np.hypot(rx, ry) >= 1.0
            if moving.sum() < 2:
                rows.append([0.0] * 7)
                continue
            rx, ry = rx[moving], ry[moving]
            px, py = mv["dst_x"][moving].astype(float), mv["dst_y"][moving].astype(float)
            # centre as a circular mean: objects wrap around the frame edges
            cx = np.angle(np.exp(2j * np.pi * px / width).mean()) * width / (2 * np.pi)
            cy = np.angle(np.exp(2j * np.pi * py / height).mean()) * height / (2 * np.pi)
            dx = (px - cx + width / 2) % width - width / 2
            dy = (py - cy + height / 2) % height - height / 2
            r = np.hypot(dx, dy) + 1e-6
            radial, tangential = ((dx * rx + dy * ry) / r).mean(), ((dx * ry - dy * rx) / r).mean()
            mean_motion = [rx.mean(), ry.mean(), np.abs(rx).mean(), np.abs(ry).mean()]
            rows.append([*mean_motion, radial, tangential, moving.mean()])
    per_frame = np.array(rows)  # (P-frames, 7)
    flips = np.mean(np.sign(per_frame[1:, :2]) * np.sign(per_frame[:-1, :2]) < 0, axis=0)
    return np.concatenate([per_frame.mean(0), per_frame[:, :2].std(0), flips])


def _accuracies(config: SyntheticConfig, features: dict, per_frame: bool) -> list[float]:
    """Test accuracy on each split; per-frame features are classified one I-frame at a
    time and a video's log-probabilities averaged (no temporal order is used)."""
    accuracies = []
    for split in (1, 2, 3):
        subsets = split_indices(config, split)
        train, test = subsets["train"], subsets["test"]
        if per_frame:
            x = np.concatenate([features[k] for k in train])
            y = np.concatenate([[k[0]] * len(features[k]) for k in train])
            owner = np.concatenate([[j] * len(features[k]) for j, k in enumerate(test)])
            scores = _logistic_regression(
                x, y, np.concatenate([features[k] for k in test]), config.num_classes
            )
            scores = np.stack([scores[owner == j].mean(0) for j in range(len(test))])
        else:
            x, y = np.stack([features[k] for k in train]), np.array([k[0] for k in train])
            scores = _logistic_regression(
                x, y, np.stack([features[k] for k in test]), config.num_classes
            )
        accuracies.append(float((scores.argmax(1) == [k[0] for k in test]).mean()))
    return accuracies


def test_object_state_at_a_single_frame_does_not_reveal_the_class() -> None:
    """Oracle check, no video needed: the main object's true position (on the torus),
    size and orientation at the I-frames, classified per frame, sit at chance."""
    config = replace(CLASSIFY, videos_per_class=40, frames=48)
    height, width = config.size
    features = {}
    for label in range(config.num_classes):
        for index in range(config.videos_per_class):
            cy, cx, size, angle = object_track(config, label, index)[:: config.gop].T
            features[label, index] = np.stack(
                [
                    np.sin(2 * np.pi * cy / height),
                    np.cos(2 * np.pi * cy / height),
                    np.sin(2 * np.pi * cx / width),
                    np.cos(2 * np.pi * cx / width),
                    np.log(size),
                    np.sin(np.radians(angle)),
                    np.cos(np.radians(angle)),
                ],
                axis=1,
            )
    accuracy = np.mean(_accuracies(config, features, per_frame=True))
    print(f"object state at I-frames -> class: {accuracy:.3f} (chance 0.1)")
    assert accuracy < 0.2, accuracy


def test_iframes_do_not_reveal_the_class_motion_vectors_do(tmp_path: Path) -> None:
    directory = generate(CLASSIFY, tmp_path, workers=2, progress=False)
    keys = [(c, i) for c in range(CLASSIFY.num_classes) for i in range(CLASSIFY.videos_per_class)]
    appearance = {k: _iframe_features(directory / CLASSIFY.video_name(*k)) for k in keys}
    motion = {k: _motion_features(directory / CLASSIFY.video_name(*k)) for k in keys}
    by_appearance = _accuracies(CLASSIFY, appearance, per_frame=True)
    by_motion = _accuracies(CLASSIFY, motion, per_frame=False)
    print(
        f"accuracy on splits 1-3, chance 0.1: I-frames {by_appearance}, motion vectors {by_motion}"
    )
    assert np.mean(by_appearance) < 0.3, by_appearance
    assert np.mean(by_motion) > 0.7, by_motion


def test_class_table() -> None:
    assert len(MOTION_CLASSES) == 10 and len({c.name for c in MOTION_CLASSES}) == 10
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(num_classes=11)
