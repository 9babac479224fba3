"""Learning-rate schedules against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.training import schedules


def test_constant_with_warmup():
    lr = schedules.constant(0.1, epochs=3, steps_per_epoch=2, warmup_epochs=1)
    assert lr == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1, 0.1])


def test_step():
    lr = schedules.step(1.0, epochs=5, steps_per_epoch=1, warmup_epochs=0, step_epochs=2, gamma=0.5)
    assert lr == pytest.approx([1, 1, 0.5, 0.5, 0.25])


def test_step_with_warmup():
    lr = schedules.step(1.0, epochs=4, steps_per_epoch=2, warmup_epochs=1.5, step_epochs=2, gamma=0.5)
    assert lr == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])


def test_multistep_with_warmup():
    lr = schedules.multistep(1.0, epochs=4, steps_per_epoch=4, warmup_epochs=0.5, milestones=[1, 3], gamma=0.1)
    assert lr == pytest.approx([0.5, 1.0, 1.0, 1.0] + [0.1] * 8 + [0.01] * 4)


def test_cosine():
    lr = schedules.cosine(1.0, epochs=1, steps_per_epoch=5, warmup_epochs=0, min_lr=0.0)
    assert lr == pytest.approx([1.0, 0.853553, 0.5, 0.146447, 0.0], abs=1e-6)  # ends at min_lr
    lr = schedules.cosine(2.0, epochs=2, steps_per_epoch=3, warmup_epochs=1, min_lr=1.0)
    assert lr == pytest.approx([2 / 3, 4 / 3, 2.0, 2.0, 1.5, 1.0])


@pytest.mark.parametrize("fn", [schedules.constant, schedules.step, schedules.multistep, schedules.cosine])
def test_length_dtype_and_bad_input(fn):
    """With each option's settings (conf/lr_schedule/<name>.yaml)."""
    from omegaconf import OmegaConf

    from tests.conftest import CONF

    settings = OmegaConf.to_container(OmegaConf.load(CONF / "lr_schedule" / f"{fn.__name__}.yaml"))
    settings = {k: v for k, v in settings.items() if k not in ("defaults", "_target_")}
    lr = fn(0.1, epochs=3, steps_per_epoch=7, **settings)
    assert lr.shape == (21,) and lr.dtype == np.float32
    with pytest.raises(ValueError):
        fn(0.1, epochs=0, steps_per_epoch=7, **settings)
    with pytest.raises(ValueError):
        fn(0.1, epochs=2, steps_per_epoch=7, **{**settings, "warmup_epochs": 3})


def test_a_schedule_beyond_float32_is_refused_with_its_step():
    """0.1 * 1e30 ** 2 = 1e59 at epoch 3 (step 5 of 2 steps per epoch): float32 would make it inf and train on nan."""
    with pytest.raises(ValueError, match=r"reaches 1e\+59 at step 5, beyond float32: check lr and gamma"):
        schedules.step(0.1, epochs=3, steps_per_epoch=2, warmup_epochs=0, step_epochs=1, gamma=1e30)
    assert schedules.step(0.1, epochs=3, steps_per_epoch=2, warmup_epochs=0, step_epochs=1, gamma=1e15)[
        -1
    ] == np.float32(1e29)
