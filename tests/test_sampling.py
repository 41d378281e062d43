"""Temporal sampling: valid indices, fixed shapes, GOP-aware P positions, seeded randomness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from datamodules.contract import Modality, Sampling, SamplingSpec
from datamodules.gop import GopIndex
from datamodules.sampling import SamplePlan, plan_test_views, plan_view

GOPS = {
    "irregular": GopIndex(40, (0, 12, 20, 21, 33)),  # scene cut, a 1-frame GOP, short last GOP
    "one_frame": GopIndex(1, (0,)),
    "five_frames": GopIndex(5, (0,)),
    "gop12_300": GopIndex(300, tuple(range(0, 300, 12))),
}

SPECS = {
    "segments3": SamplingSpec(Sampling.SEGMENTS, num_positions=3, test_clips=2),
    "segments16": SamplingSpec(Sampling.SEGMENTS, num_positions=16),
    "gop_clips16": SamplingSpec(Sampling.GOP_CLIPS, num_positions=16, test_clips=3),
    "gop_clips3": SamplingSpec(Sampling.GOP_CLIPS, num_positions=3),
    "consecutive4x3": SamplingSpec(Sampling.CONSECUTIVE_GOPS, num_positions=4, pframes_per_gop=3),
    "consecutive2x5": SamplingSpec(
        Sampling.CONSECUTIVE_GOPS, num_positions=2, pframes_per_gop=5, test_clips=2
    ),
    "frames8": SamplingSpec(Sampling.FRAMES, num_positions=8, test_clips=3),
    "frames8_window32": SamplingSpec(
        Sampling.FRAMES, num_positions=8, clip_frames=32, test_clips=3
    ),
}

CASES = list(itertools.product(SPECS, GOPS))


def _expected_lengths(spec: SamplingSpec) -> tuple[int, int, int]:
    n = spec.num_positions
    if spec.kind == Sampling.CONSECUTIVE_GOPS:
        return n, n * spec.pframes_per_gop, n * spec.pframes_per_gop
    return n, n, n


def _all_plans(spec: SamplingSpec, gop: GopIndex) -> list[SamplePlan]:
    train = [plan_view(spec, gop, True, np.random.default_rng(seed)) for seed in range(20)]
    return train + plan_test_views(spec, gop)


@pytest.mark.parametrize(("spec_name", "gop_name"), CASES)
def test_indices_valid_and_shapes_fixed(spec_name: str, gop_name: str) -> None:
    spec, gop = SPECS[spec_name], GOPS[gop_name]
    lengths = _expected_lengths(spec)
    for plan in _all_plans(spec, gop):
        assert (len(plan.iframes), len(plan.pframes), len(plan.rgb)) == lengths
        for f in (*plan.iframes, *plan.pframes, *plan.rgb):
            assert isinstance(f, int)
            assert 0 <= f < gop.num_frames
        assert all(gop.is_iframe(i) for i in plan.iframes)


@pytest.mark.parametrize(("spec_name", "gop_name"), CASES)
def test_pframes_off_iframes_when_the_gop_has_p_frames(spec_name: str, gop_name: str) -> None:
    spec, gop = SPECS[spec_name], GOPS[gop_name]
    for plan in _all_plans(spec, gop):
        for p in plan.pframes:
            if gop.gop_length(gop.gop_of(p)) > 1:
                assert not gop.is_iframe(p)
            else:  # no P-frame in that GOP: the I-frame position itself
                assert gop.is_iframe(p)


@pytest.mark.parametrize(("spec_name", "gop_name"), CASES)
def test_iframes_are_the_gops_of_the_pframes(spec_name: str, gop_name: str) -> None:
    spec, gop = SPECS[spec_name], GOPS[gop_name]
    per_iframe = spec.pframes_per_gop if spec.kind == Sampling.CONSECUTIVE_GOPS else 1
    for plan in _all_plans(spec, gop):
        for k, p in enumerate(plan.pframes):
            assert plan.iframes[k // per_iframe] == gop.gop_start(gop.gop_of(p))


@pytest.mark.parametrize("spec_name", list(SPECS))
def test_train_is_seeded_and_random(spec_name: str) -> None:
    spec, gop = SPECS[spec_name], GOPS["gop12_300"]
    a = plan_view(spec, gop, True, np.random.default_rng(7))
    b = plan_view(spec, gop, True, np.random.default_rng(7))
    assert a == b
    plans = {plan_view(spec, gop, True, np.random.default_rng(s)) for s in range(10)}
    assert len(plans) > 1


@pytest.mark.parametrize("spec_name", list(SPECS))
def test_test_views_deterministic(spec_name: str) -> None:
    spec, gop = SPECS[spec_name], GOPS["irregular"]
    views = plan_test_views(spec, gop)
    assert len(views) == spec.test_clips
    assert views == plan_test_views(spec, gop)
    # an rng given at test time is ignored
    assert views[0] == plan_view(spec, gop, False, np.random.default_rng(3), clip=0)


def test_segments_centre_placement() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.SEGMENTS, num_positions=3)
    (plan,) = plan_test_views(spec, gop)
    assert plan == SamplePlan(iframes=(48, 144, 240), pframes=(50, 150, 250), rgb=(50, 150, 250))


def test_segments_test_clips_tile_the_segment() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.SEGMENTS, num_positions=3, test_clips=2)
    first, second = plan_test_views(spec, gop)
    assert first.rgb == (25, 125, 225)  # fraction 1/4 of each 100-frame segment
    assert second.rgb == (75, 175, 275)  # fraction 3/4


def test_segments_move_an_iframe_to_the_next_p_frame() -> None:
    # One segment of 24 frames: its centre is frame 12, the second GOP's I-frame.
    spec = SamplingSpec(Sampling.SEGMENTS, num_positions=1)
    (plan,) = plan_test_views(spec, GopIndex(24, (0, 12)))
    assert plan == SamplePlan(iframes=(12,), pframes=(13,), rgb=(12,))
    # ... unless that GOP has no P-frame: the I-frame itself, whose accumulated MV is zero
    (plan,) = plan_test_views(spec, GopIndex(24, (0, 12, 13)))
    assert plan == SamplePlan(iframes=(12,), pframes=(12,), rgb=(12,))


def test_segments_without_motion_keep_the_chosen_frames() -> None:
    spec = SamplingSpec(Sampling.SEGMENTS, num_positions=1)
    (plan,) = plan_test_views(spec, GopIndex(24, (0, 12)), modalities=(Modality.IFRAME,))
    assert plan.pframes == plan.rgb == (12,)
    assert plan.iframes == (12,)


def test_segments_train_stays_inside_each_segment() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.SEGMENTS, num_positions=3)
    seen = set()
    for seed in range(200):
        plan = plan_view(spec, gop, True, np.random.default_rng(seed))
        for k, f in enumerate(plan.rgb):
            assert 100 * k <= f < 100 * (k + 1)
        seen.update(plan.rgb)
    assert len(seen) > 150  # the whole segment is reachable, not a few fixed frames


def test_gop_clips_centre_placement() -> None:
    gop = GOPS["gop12_300"]  # 25 GOPs
    spec = SamplingSpec(Sampling.GOP_CLIPS, num_positions=5)
    (plan,) = plan_test_views(spec, gop)
    assert plan.iframes == (24, 84, 144, 204, 264)  # GOPs 2, 7, 12, 17, 22
    assert plan.pframes == tuple(i + 6 for i in plan.iframes)  # centre of P-frames 1..11


def test_gop_clips_train_position_is_random_inside_the_gop() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.GOP_CLIPS, num_positions=5)
    offsets = set()
    for seed in range(100):
        plan = plan_view(spec, gop, True, np.random.default_rng(seed))
        for k, (i, p) in enumerate(zip(plan.iframes, plan.pframes, strict=True)):
            assert 5 * k <= i // 12 < 5 * (k + 1)  # a GOP of segment k
            offsets.add(p - i)
    assert offsets == set(range(1, 12))


def test_gop_clips_repeat_gops_evenly_when_there_are_few() -> None:
    gop = GOPS["irregular"]  # 5 GOPs for 16 positions
    spec = SamplingSpec(Sampling.GOP_CLIPS, num_positions=16)
    (plan,) = plan_test_views(spec, gop)
    gops = [gop.gop_of(p) for p in plan.pframes]
    assert gops == sorted(gops)
    counts = np.bincount(gops, minlength=gop.num_gops)
    assert counts.min() >= 3 and counts.max() - counts.min() <= 1
    assert plan.pframes.count(20) == counts[2]  # the 1-frame GOP gives its I-frame


def test_gop_clips_single_short_gop() -> None:
    (plan,) = plan_test_views(SamplingSpec(Sampling.GOP_CLIPS, 4), GOPS["five_frames"])
    assert plan.pframes == (3, 3, 3, 3)  # centre of P-frames 1..4
    assert plan.iframes == (0, 0, 0, 0)


def test_consecutive_gops_centred_and_uniform_inside() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.CONSECUTIVE_GOPS, num_positions=4, pframes_per_gop=3)
    (plan,) = plan_test_views(spec, gop)
    assert plan.iframes == (132, 144, 156, 168)  # GOPs 11..14 of 0..24
    assert plan.pframes == tuple(i + d for i in plan.iframes for d in (2, 6, 10))


def test_consecutive_gops_train_runs_are_consecutive() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.CONSECUTIVE_GOPS, num_positions=4, pframes_per_gop=3)
    starts = set()
    for seed in range(50):
        plan = plan_view(spec, gop, True, np.random.default_rng(seed))
        assert np.all(np.diff(plan.iframes) == 12)
        for g, i in enumerate(plan.iframes):
            third = plan.pframes[3 * g : 3 * g + 3]
            # one P-frame per third of the GOP's 11 P-frames
            assert [1 <= p - i < 12 for p in third] == [True] * 3
            assert list(third) == sorted(third)
        starts.add(plan.iframes[0])
    assert len(starts) > 5


def test_consecutive_gops_short_video_repeats_the_last_gop() -> None:
    gop = GopIndex(30, (0, 12, 24))  # 3 GOPs for 4; the last has 5 P-frames
    spec = SamplingSpec(Sampling.CONSECUTIVE_GOPS, num_positions=4, pframes_per_gop=3)
    (plan,) = plan_test_views(spec, gop)
    assert plan.iframes == (0, 12, 24, 24)
    assert plan.pframes[6:9] == plan.pframes[9:12]


def test_consecutive_gops_short_gop_repeats_positions() -> None:
    gop = GopIndex(3, (0,))  # 2 P-frames for 3 positions
    spec = SamplingSpec(Sampling.CONSECUTIVE_GOPS, num_positions=1, pframes_per_gop=3)
    (plan,) = plan_test_views(spec, gop)
    assert plan.pframes == (1, 2, 2)


def test_frames_whole_video() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.FRAMES, num_positions=8)
    (plan,) = plan_test_views(spec, gop)
    assert plan.rgb == (18, 56, 93, 131, 168, 206, 243, 281)  # 300/8 segment centres
    assert plan.pframes == (18, 56, 93, 131, 169, 206, 243, 281)  # 168 is an I-frame
    assert plan.iframes == (12, 48, 84, 120, 168, 204, 240, 276)


def test_frames_window() -> None:
    gop = GOPS["gop12_300"]
    spec = SamplingSpec(Sampling.FRAMES, num_positions=8, clip_frames=64, test_clips=3)
    views = plan_test_views(spec, gop, modalities=(Modality.RGB,))
    starts = [int(237 * (c + 0.5) / 3) for c in range(3)]  # 237 window starts
    for plan, start in zip(views, starts, strict=True):
        assert plan.rgb == tuple(start + 4 + 8 * k for k in range(8))
    for seed in range(20):
        plan = plan_view(spec, gop, True, np.random.default_rng(seed))
        assert np.all(np.diff(plan.rgb) == 8)


def test_one_frame_video() -> None:
    gop = GOPS["one_frame"]
    for spec in SPECS.values():
        for plan in _all_plans(spec, gop):
            assert set(plan.iframes) == set(plan.pframes) == set(plan.rgb) == {0}


def test_bad_arguments() -> None:
    spec, gop = SPECS["segments3"], GOPS["irregular"]
    with pytest.raises(ValueError, match="rng"):
        plan_view(spec, gop, True, None)
    with pytest.raises(ValueError, match="test clip"):
        plan_view(spec, gop, False, None, clip=2)
    with pytest.raises(ValueError, match="num_positions"):
        plan_view(SamplingSpec(num_positions=0), gop, False, None)
