"""C13: bytes held per parameter come from the optimizers' real state, frozen layers excluded."""
import numpy as np

from theory.optimizer_memory import check_c13, training_bytes


def test_bytes_counted_from_the_state_arrays():
    rng = np.random.default_rng(0)
    # one trainable 3x4 layer: weight + grad + (0, 1, 2) state arrays, 4 bytes each
    assert training_bytes("sgd", {"momentum": 0.0}, [(3, 4)], [False], rng) == (12 * 4 * 2, 12)
    assert training_bytes("sgd", {"momentum": 0.9}, [(3, 4)], [False], rng) == (12 * 4 * 3, 12)
    assert training_bytes("adamw", {}, [(3, 4)], [False], rng) == (12 * 4 * 4, 12)


def test_a_frozen_layer_holds_its_weights_only():
    rng = np.random.default_rng(1)
    total, trainable = training_bytes("adamw", {}, [(5, 5), (2, 5)], [True, False], rng)
    assert trainable == 10
    assert total == 25 * 4 + 10 * 4 * 4


def test_c13_passes_on_random_shapes():
    result = check_c13(20, 0)
    assert result.verdict == "pass", result.numbers
    assert result.numbers["bytes_per_param_adamw"] == 16
