"""kerust.config: thread count control and build information."""

from __future__ import annotations

import numpy as np
import pytest

import kerust as keras
from kerust import config, layers


@pytest.fixture(autouse=True)
def _default_threads_after() -> object:
    yield
    config.set_num_threads(0)


def test_set_num_threads_changes_the_pool_and_zero_restores_the_default() -> None:
    default = config.get_num_threads()
    assert default >= 1
    config.set_num_threads(1)
    assert config.get_num_threads() == 1 and config.requested_num_threads() == 1
    config.set_num_threads(3)
    assert config.get_num_threads() == 3
    config.set_num_threads(0)
    assert config.get_num_threads() == default and config.requested_num_threads() == 0


@pytest.mark.parametrize("bad", [-1, 1025, 10**12])
def test_out_of_range_thread_counts_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match=f"set_num_threads: expected a thread count between 1 and 1024.*got {bad}"):
        config.set_num_threads(bad)


@pytest.mark.parametrize("bad", [True, 2.0, "2", None])
def test_non_int_thread_counts_are_type_errors(bad: object) -> None:
    with pytest.raises(TypeError, match="set_num_threads expects an int"):
        config.set_num_threads(bad)  # type: ignore[arg-type]


def _train_cnn() -> list:
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    x = rng.random((72, 12, 12, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 3, 72), 3)
    model = keras.Sequential([keras.Input((12, 12, 1)), layers.Conv2D(6, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                              layers.Dropout(0.2), layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    model.fit(x, y, batch_size=36, epochs=2, verbose=0)  # 9 chunks of 4 samples per batch
    return model.get_weights() + [model.predict(x, batch_size=72, verbose=0)]


def test_results_are_bit_identical_for_any_thread_count() -> None:
    config.set_num_threads(1)
    one = _train_cnn()
    config.set_num_threads(3)
    three = _train_cnn()
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)


def test_show_config_reports_version_simd_and_threads() -> None:
    config.set_num_threads(2)
    lines: list = []
    keras.show_config(print_fn=lines.append)
    text = "\n".join(lines)
    assert f"kerust:             {keras.__version__}" in text
    assert "simd:" in text and ("avx512" in text or "avx2+fma" in text or "baseline" in text)
    assert "threads:            2" in text
    info = config.build_info()
    assert info["threads"] == 2 and info["kerust"] == keras.__version__
