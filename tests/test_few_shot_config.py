"""``--shots K`` layers the method's few-shot protocol (``configs/<method>/few_shot.yaml``)
over its dataset config, once, and the recipe a K-shot run is compared with includes it."""

from __future__ import annotations

from cvbench.configs import resolve


def test_shots_layer_the_few_shot_config() -> None:
    full = resolve("tpclip", "ucf101")
    shot = resolve("tpclip", "ucf101", shots=4)
    assert shot.files == ("configs/tpclip/ucf101.yaml", "configs/tpclip/few_shot.yaml")
    assert full.files == ("configs/tpclip/ucf101.yaml",)
    assert (shot.global_batch, shot.optim["lr"]) == (64, 4e-6)  # the paper's Table 7 setting
    assert shot.config["test_clips"] == 1 and shot.config["test_crops"] == 1
    assert full.global_batch != 64


def test_the_file_given_with_config_is_not_applied_twice() -> None:
    shot = resolve("tpclip", "ucf101", "configs/tpclip/few_shot.yaml", shots=4)
    assert shot.files == ("configs/tpclip/ucf101.yaml", "configs/tpclip/few_shot.yaml")


def test_a_method_without_a_few_shot_config_is_unchanged() -> None:
    assert resolve("stm", "ucf101", shots=4).files == resolve("stm", "ucf101").files
